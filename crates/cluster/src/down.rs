//! `kinet down`: stop the node agents and the control plane, remove the nodes' network (the
//! namespaces, the host link and its route), then the cluster's state.

use std::fs;

use anyhow::{Context, Result};

use crate::nodes;
use crate::process::{self, Stopped};
use crate::state::{self, absolute_home, ClusterDir};

pub async fn down(name: &str, keep_data: bool) -> Result<()> {
    state::validate_name(name)?;
    let dir = ClusterDir::new(&absolute_home()?, name);
    if !dir.root.exists() {
        println!("No cluster named \"{name}\"; nothing to do.");
        return Ok(());
    }
    // Agents first: they would only log errors once the API server is gone.
    match dir.load_info() {
        Ok(info) => {
            let plan = nodes::recorded_plan(&info);
            for (node, pid) in nodes::teardown(&dir, &plan).await? {
                eprintln!(" ✓ Stopped agent of {node} (pid {pid})");
            }
            if info.nodes > 0 {
                eprintln!(" ✓ Removed the nodes and the underlay");
            }
            kinet_agent::pods::remove_cluster_cgroups(name).await;
        }
        Err(e) => eprintln!("   cannot read the cluster's settings, nodes left alone: {e:#}"),
    }
    // Every API server of `--api-servers` (every possible one when the settings cannot be
    // read: a server that does not exist has no PID file).
    let recorded = dir.load_info().ok().map(|info| info.api_servers);
    let servers = recorded.unwrap_or(crate::apiservers::MAX);
    for index in 0..servers {
        let what = match index {
            0 => "control plane".to_string(),
            i => format!("API server {i}"),
        };
        match dir.read_pid(index) {
            Some(pid) => match process::stop(pid, name, index)? {
                Stopped::Terminated => eprintln!(" ✓ Stopped {what} (pid {pid})"),
                Stopped::Killed => eprintln!(" ✓ Killed {what} (pid {pid}), it ignored SIGTERM"),
                Stopped::NotRunning => eprintln!("   {what} was not running"),
            },
            None if recorded.is_some() || index == 0 => eprintln!("   {what} was not running"),
            None => {}
        }
        dir.remove_pid(index)?;
    }
    if keep_data {
        println!(
            "Cluster \"{name}\" stopped; state kept in {}",
            dir.root.display()
        );
    } else {
        if let Some(cidr) = dir.load_info().ok().and_then(|info| info.underlay) {
            let claims = std::path::Path::new(nodes::claims::CLAIMS_DIR);
            if let Err(e) = nodes::claims::release(claims, cidr, &dir.cluster_json()) {
                eprintln!("   could not drop the claim on {cidr}: {e}");
            }
        }
        fs::remove_dir_all(&dir.root)
            .with_context(|| format!("removing {}", dir.root.display()))?;
        println!("Cluster \"{name}\" deleted.");
    }
    Ok(())
}
