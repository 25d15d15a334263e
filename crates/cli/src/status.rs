//! `kinet status` and `kinet kubeconfig`.

use anyhow::{bail, Context, Result};
use kinet_pki::Pki;

use crate::nodes;
use crate::probe::Probe;
use crate::process::running_pid;
use crate::state::{self, ClusterDir};
use crate::up::absolute_home;

/// All clusters as a table, or one cluster in detail with a readiness probe.
pub async fn status(name: Option<&str>) -> Result<()> {
    let home = absolute_home()?;
    let Some(name) = name else {
        let clusters = state::list_clusters(&home)?;
        if clusters.is_empty() {
            println!("No clusters under {}.", home.display());
            return Ok(());
        }
        println!("{:<22}{:<10}{:<8}NODES", "NAME", "STATUS", "PORT");
        for dir in clusters {
            let status = if running_pid(&dir).is_some() {
                "running"
            } else {
                "stopped"
            };
            // One unreadable cluster.json should not hide the others.
            match dir.load_info() {
                Ok(info) => println!(
                    "{:<22}{status:<10}{:<8}{}",
                    info.name, info.port, info.nodes
                ),
                Err(e) => println!("{:<22}{status:<10}?       ? ({e:#})", dir.name),
            }
        }
        return Ok(());
    };
    let dir = existing(&home, name)?;
    let info = dir.load_info()?;
    println!("Name:        {}", info.name);
    println!("Created:     {}", info.created);
    println!("API server:  https://127.0.0.1:{}", info.port);
    println!("Nodes:       {}", info.nodes);
    if let Some(cidr) = info.underlay {
        let plan = nodes::Plan::new(&info.name, cidr, info.nodes);
        println!(
            "Underlay:    {cidr}, gateway {} on host link {}",
            plan.underlay.gateway, plan.host_link
        );
        for node in &plan.nodes {
            let agent = match nodes::agents::running(&dir, &node.name) {
                Some(pid) => format!("agent running (pid {pid})"),
                None => "agent stopped".to_string(),
            };
            println!("  {:<32}{:<16}{agent}", node.name, node.ip.to_string());
        }
    }
    if let Some(config) = &info.config {
        println!("Config:      {}", config.display());
    }
    println!("Kubeconfig:  {}", dir.kubeconfig().display());
    match running_pid(&dir) {
        Some(pid) => {
            println!("Status:      running (pid {pid})");
            let pki = Pki::load(&dir.pki())?;
            let probe = Probe::new(&pki.ca_cert_pem, info.port, dir.read_token()?)?;
            match probe.readyz().await {
                Ok(200) => println!("Ready:       yes (/readyz 200)"),
                Ok(code) => println!("Ready:       no (/readyz {code})"),
                Err(e) => println!("Ready:       no ({e:#})"),
            }
        }
        None => println!("Status:      stopped"),
    }
    Ok(())
}

/// `kinet node exec`: runs `command` in the node's network namespace (through `nsenter`,
/// like `ip netns exec`) and returns its exit code.
pub fn node_exec(name: &str, node: &str, command: &[String]) -> Result<i32> {
    let dir = existing(&absolute_home()?, name)?;
    let info = dir.load_info()?;
    let plan = nodes::recorded_plan(&info);
    let prefixed = format!("{name}-{node}");
    let Some(n) = plan.node(node).or_else(|| plan.node(&prefixed)) else {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "cluster \"{name}\" has no node {node:?} (nodes: {})",
            names.join(", ")
        );
    };
    if !kinet_netns::NetNs::exists(&n.netns) {
        bail!(
            "node {} has no network namespace {} (is the cluster up?)",
            n.name,
            n.netns
        );
    }
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", n.netns))
        .args(command)
        .status()
        .context("running nsenter")?;
    Ok(status.code().unwrap_or(1))
}

/// Prints the kubeconfig path as the last line.
pub fn kubeconfig(name: &str) -> Result<()> {
    let dir = existing(&absolute_home()?, name)?;
    println!("{}", dir.kubeconfig().display());
    Ok(())
}

fn existing(home: &std::path::Path, name: &str) -> Result<ClusterDir> {
    state::validate_name(name)?;
    let dir = ClusterDir::new(home, name);
    if !dir.exists() {
        bail!("no cluster named \"{name}\" under {}", home.display());
    }
    Ok(dir)
}
