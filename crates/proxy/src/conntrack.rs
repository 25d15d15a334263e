//! Stale UDP flows. UDP has no connection teardown, so conntrack keeps
//! sending a client's packets to the endpoint it was DNATed to even after the
//! endpoint left the service. kube-proxy deletes those entries; so do we,
//! with the `conntrack` tool when the machine has it.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Command;

use kinet_proxy_rules::{udp_dnat_targets, Ruleset};

/// Every UDP DNAT target in the ruleset, sorted and deduplicated.
pub fn udp_endpoints(rs: &Ruleset) -> Vec<SocketAddrV4> {
    let mut out: Vec<SocketAddrV4> = udp_dnat_targets(rs.chains()).collect();
    out.sort();
    out.dedup();
    out
}

/// The `conntrack` tool, run inside one network namespace.
#[derive(Debug, Clone)]
pub struct Conntrack {
    netns: PathBuf,
    program: PathBuf,
}

impl Conntrack {
    /// Finds `conntrack` on `PATH`; `None` if the machine lacks it.
    pub fn detect(netns: &Path) -> Option<Conntrack> {
        let path = std::env::var_os("PATH")?;
        let program = std::env::split_paths(&path)
            .map(|d| d.join("conntrack"))
            .find(|p| p.is_file())?;
        Some(Conntrack {
            netns: netns.to_path_buf(),
            program,
        })
    }

    /// Deletes UDP entries whose destination was NATed to `ep`.
    pub fn flush_udp_to(&self, ep: SocketAddrV4) -> std::io::Result<()> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg(&self.program)
            .args(["-D", "-p", "udp", "--dst-nat"])
            .arg(ep.ip().to_string())
            .args(["--reply-port-src", &ep.port().to_string()])
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Exit 1 with "0 flow entries" just means there was nothing to delete.
        if out.status.success() || stderr.contains("0 flow entries") {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "conntrack -D: {}",
                stderr.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kinet_proxy_rules::{render, NodeInfo, ProxyConfig};
    use serde_json::json;

    #[test]
    fn only_udp_dnat_targets_are_collected() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "kube-system", "name": "dns"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
            ]}
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "kube-system", "name": "dns-1",
                         "labels": {"kubernetes.io/service-name": "dns"}},
            "addressType": "IPv4",
            "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.9"]}, {"addresses": ["10.244.1.3"]}]
        }))
        .unwrap();
        let node = NodeInfo {
            name: "n".into(),
            node_ips: vec![],
            pod_cidr: None,
        };
        let rs = render(&[svc], &[slice], &node, &ProxyConfig::default());
        let want: Vec<SocketAddrV4> = vec![
            "10.244.1.3:5353".parse().unwrap(),
            "10.244.1.9:5353".parse().unwrap(),
        ];
        assert_eq!(udp_endpoints(&rs), want);
    }
}
