//! `kinet up --proxy-mode`: which of kube-proxy's modes the node agents run, recorded in
//! `cluster.json` and switchable on an existing cluster. IPVS is refused up front: it needs
//! the `ip_vs` kernel module, and kinet builds no mode it cannot test.

use anyhow::{Context, Result};
pub use kinet_proxy::ProxyMode;

use crate::nodes::{self, agents};
use crate::prereqs::{kernel_has, HostLookup, Lookup, IP_VS};
use crate::state::{ClusterDir, ClusterInfo};

/// `--proxy-mode` as typed: `nftables`, `iptables`, or `ipvs` (refused with the reason).
pub fn parse(s: &str) -> Result<ProxyMode, String> {
    if s == "ipvs" {
        return Err(ipvs_refusal(&HostLookup::new()));
    }
    s.parse()
}

fn ipvs_refusal(host: &impl Lookup) -> String {
    if kernel_has(host, &IP_VS) {
        "this kernel has the ip_vs module, but kinet does not build ipvs mode: use nftables \
         (default) or iptables"
            .into()
    } else {
        "ipvs mode needs the ip_vs kernel module (CONFIG_IP_VS), which this kernel does not \
         have (not loaded, built in or loadable: `modprobe -n ip_vs` would fail); use \
         nftables (default) or iptables"
            .into()
    }
}

/// Records `mode` for an existing cluster; `true` if it changed. Agents read it when they
/// start.
pub fn record(dir: &ClusterDir, info: &mut ClusterInfo, mode: Option<ProxyMode>) -> Result<bool> {
    let Some(mode) = mode.filter(|m| *m != info.proxy_mode) else {
        return Ok(false);
    };
    eprintln!(
        "   proxy mode: {} -> {mode} (the new mode's rules are loaded, then the old mode's removed)",
        info.proxy_mode
    );
    info.proxy_mode = mode;
    dir.save_info(info)?;
    Ok(true)
}

/// Stops every agent of a running cluster so `up` starts them again in the recorded mode.
/// Pods keep running (a new agent adopts them), and so do the old rules until the new
/// agent's proxy has loaded its own.
pub fn stop_agents(dir: &ClusterDir, info: &ClusterInfo) -> Result<()> {
    for node in &nodes::recorded_plan(info).nodes {
        agents::stop(dir, &node.name)
            .with_context(|| format!("stopping the agent of {}", node.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoIpvs;

    impl Lookup for NoIpvs {
        fn program(&self, _: &str) -> bool {
            true
        }
        fn exists(&self, _: &str) -> bool {
            false
        }
        fn proc_modules(&self) -> Option<String> {
            None
        }
        fn kernel_config(&self) -> Option<String> {
            Some("CONFIG_NF_TABLES=y\n# CONFIG_IP_VS is not set\n".into())
        }
        fn module_index(&self) -> Option<(String, String)> {
            None
        }
    }

    #[test]
    fn ipvs_is_refused_naming_the_missing_module() {
        let msg = ipvs_refusal(&NoIpvs);
        assert!(msg.contains("ip_vs kernel module"), "{msg}");
        assert!(msg.contains("iptables"), "{msg}");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse("iptables"), Ok(ProxyMode::Iptables));
        assert_eq!(parse("nftables"), Ok(ProxyMode::Nftables));
        assert!(parse("userspace").is_err());
    }
}
