//! `kinet agent --name C --node N`: the node agent, started by `up` inside the node's
//! network namespace, so it reaches the API server over the underlay as a kubelet would.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kinet_agent::{host, AgentConfig, NodeConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::nodes::Plan;
use crate::state::{self, ClusterDir};
use crate::up::absolute_home;

pub async fn agent(name: &str, node: &str) -> Result<()> {
    crate::serve::init_logging();
    state::validate_name(name)?;
    let dir = ClusterDir::new(&absolute_home()?, name);
    let info = dir.load_info()?;
    let Some(underlay) = info.underlay else {
        bail!("cluster \"{name}\" has no underlay (was it created with --nodes 0?)");
    };
    let plan = Plan::new(name, underlay, info.nodes);
    let Some(me) = plan.node(node) else {
        bail!("cluster \"{name}\" has no node {node}");
    };
    let path = dir.node_kubeconfig(node);
    let kubeconfig =
        Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("loading the node's kubeconfig")?;
    config.read_timeout = Some(Duration::from_secs(295));
    let client = kube::Client::try_from(config)?;
    let cfg = AgentConfig::new(NodeConfig {
        name: me.name.clone(),
        internal_ip: me.ip,
        control_plane: me.control_plane,
        capacity: host::detect_capacity(),
        system: host::detect_system(&format!("kinet://{}", env!("CARGO_PKG_VERSION"))),
    });
    crate::serve::ignore_hangup()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tracing::info!(node, ip = %me.ip, pid = std::process::id(), "agent starting");
    tokio::select! {
        r = kinet_agent::run(client, cfg) => r?,
        _ = term.recv() => tracing::info!(node, "agent stopping (SIGTERM)"),
    }
    Ok(())
}
