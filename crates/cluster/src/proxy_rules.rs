//! `kinet proxy rules <ns>/<svc>`: what one Service produced in the proxy's nftables table,
//! read live from each node's namespace (`nft list table ip kinet`), so it shows what the
//! kernel has, affinity entries and all, not what the proxy meant to load. In iptables mode,
//! the Service's lines of `iptables-save`.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::nodes;
use crate::proxy_mode::ProxyMode;
use crate::state::{self, absolute_home, ClusterDir};

/// The table every node's proxy owns (`ProxyConfig::default().table`).
fn table() -> String {
    kinet_proxy::ProxyConfig::default().table
}

/// The Service's chains, sets and map elements on `node` (or on every node), with a
/// `# node …` header line per node.
pub fn rules(name: &str, node: Option<&str>, service: &str) -> Result<String> {
    let Some((ns, svc)) = service.split_once('/') else {
        bail!("give the Service as <namespace>/<name>, e.g. default/web");
    };
    state::validate_name(name)?;
    let home = absolute_home()?;
    let dir = ClusterDir::new(&home, name);
    if !dir.exists() {
        bail!("no cluster named \"{name}\" under {}", home.display());
    }
    let info = dir.load_info()?;
    let plan = nodes::recorded_plan(&info);
    let chosen: Vec<&nodes::NodePlan> = match node {
        Some(n) => {
            let prefixed = format!("{name}-{n}");
            match plan.node(n).or_else(|| plan.node(&prefixed)) {
                Some(p) => vec![p],
                None => bail!("cluster \"{name}\" has no node {n:?}"),
            }
        }
        None => plan.nodes.iter().collect(),
    };
    if chosen.is_empty() {
        bail!("cluster \"{name}\" has no nodes, so no proxy rules");
    }
    let mut out = String::new();
    for n in chosen {
        out += &format!("# node {} (netns {})\n", n.name, n.netns);
        let cut = match info.proxy_mode {
            ProxyMode::Nftables => {
                match in_netns(&n.netns, &["nft", "list", "table", "ip", &table()])? {
                    None => {
                        out += &format!("# no table ip {} (is the proxy running?)\n", table());
                        continue;
                    }
                    Some(listing) => kinet_proxy::rules_in_listing(&listing, ns, svc),
                }
            }
            ProxyMode::Iptables => {
                let save = in_netns(&n.netns, &["iptables-save"])?.unwrap_or_default();
                kinet_proxy::rules_in_save(&save, ns, svc)
            }
        };
        if cut.is_empty() {
            out += &format!("# no rules for {ns}/{svc}\n");
        } else {
            out += &cut;
        }
    }
    Ok(out)
}

/// `cmd`'s output inside `netns`; `None` if it names something absent (`nft list table`
/// of a table that is not there).
fn in_netns(netns: &str, cmd: &[&str]) -> Result<Option<String>> {
    if !kinet_netns::NetNs::exists(netns) {
        bail!("network namespace {netns} does not exist (is the cluster up?)");
    }
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(cmd)
        .output()
        .with_context(|| format!("running nsenter {}", cmd[0]))?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such file") {
        return Ok(None);
    }
    bail!("{} in {netns}: {}", cmd.join(" "), err.trim())
}
