//! `kinet proxy rules <ns>/<svc>`: what one Service produced in the proxy's nftables table,
//! read live from each node's namespace (`nft list table ip kinet`), so it shows what the
//! kernel has, affinity entries and all, not what the proxy meant to load.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::nodes;
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
    let plan = nodes::recorded_plan(&dir.load_info()?);
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
        match list_table(&n.netns)? {
            None => out += &format!("# no table ip {} (is the proxy running?)\n", table()),
            Some(listing) => {
                let cut = kinet_proxy::rules_in_listing(&listing, ns, svc);
                if cut.is_empty() {
                    out += &format!("# no rules for {ns}/{svc}\n");
                } else {
                    out += &cut;
                }
            }
        }
    }
    Ok(out)
}

/// `nft list table ip <table>` inside `netns`; `None` if the table is absent.
fn list_table(netns: &str) -> Result<Option<String>> {
    if !kinet_netns::NetNs::exists(netns) {
        bail!("network namespace {netns} does not exist (is the cluster up?)");
    }
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["nft", "list", "table", "ip", &table()])
        .output()
        .context("running nsenter nft")?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such file") {
        return Ok(None);
    }
    bail!("nft list table in {netns}: {}", err.trim())
}
