//! The `kinet-policy` image's process: `kinet image-run kinet-policy:<v> -- <args>` runs the
//! NetworkPolicy enforcer with in-cluster credentials in a DaemonSet's pod on the host
//! network (`kinet manifests policy`), the same enforcer the node agent runs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

/// The image's flags; both default to the downward API's variables the DaemonSet sets.
#[derive(Debug, Parser)]
#[command(name = "kinet-policy", about = "NetworkPolicy enforcer for Kubernetes")]
struct Flags {
    /// The Node whose pods this enforcer guards; default `$NODE_NAME`.
    #[arg(long)]
    node_name: Option<String>,
    /// The node's address; default `$NODE_IP` (`status.hostIP`).
    #[arg(long)]
    node_ip: Option<Ipv4Addr>,
}

/// Runs the enforcer until SIGTERM, then removes its table: policies are enforced only
/// while an enforcer keeps them current (as the node agent does).
pub async fn run_policy_image(args: &[String]) -> Result<()> {
    let flags = Flags::try_parse_from(
        std::iter::once("kinet-policy".to_string()).chain(args.iter().cloned()),
    )?;
    let node = crate::proxy_image::node_name(flags.node_name)?;
    let ip = match flags.node_ip {
        Some(ip) => ip,
        None => std::env::var("NODE_IP")
            .context("no node address: pass --node-ip or set NODE_IP (status.hostIP)")?
            .parse()
            .context("NODE_IP")?,
    };
    let client = crate::dns_image::in_cluster_client()?;
    let netns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
    let cfg = kinet_agent::policy::PolicyConfig::new(node, vec![ip], netns.clone());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ended = tokio::select! {
        r = kinet_agent::policy::run(client, cfg) => r.context("network policy"),
        _ = term.recv() => Ok(()),
    };
    kinet_agent::policy::remove_table(&netns).context("removing the policy table")?;
    ended
}
