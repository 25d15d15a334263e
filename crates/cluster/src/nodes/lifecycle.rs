//! The node steps of `up` and `down`: network, credentials, agents, readiness, teardown.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kinet_pki::{Credentials, Pki};
use kube::Api;

use super::{agents, candidate_subnets, net, Plan};
use crate::progress::Step;
use crate::state::{self, ClusterDir, ClusterInfo};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(250);
/// The group every node's certificate carries, as the kubelet's does.
const NODES_GROUP: &str = "system:nodes";

/// The plan for a cluster as recorded (names do not depend on the subnet, so a cluster
/// that never claimed one can still be torn down).
pub fn recorded_plan(info: &ClusterInfo) -> Plan {
    let cidr = info.underlay.unwrap_or(candidate_subnets()[0]);
    Plan::new(&info.name, cidr, info.nodes)
}

/// Claims (or re-claims) the underlay, records it, and makes every node's namespace.
/// On failure nothing of the network is left behind.
pub async fn prepare(dir: &ClusterDir, info: &ClusterInfo) -> Result<Plan> {
    let cidr = match net::ensure_underlay(&info.name, info.underlay).await {
        Ok(cidr) => cidr,
        Err(e) => {
            let _ = net::teardown(&recorded_plan(info)).await;
            return Err(e);
        }
    };
    let plan = Plan::new(&info.name, cidr, info.nodes);
    if info.underlay != Some(cidr) {
        let mut updated = info.clone();
        updated.underlay = Some(cidr);
        if let Err(e) = dir.save_info(&updated) {
            let _ = net::teardown(&plan).await;
            return Err(e);
        }
    }
    if let Err(e) = net::ensure_nodes(&plan).await {
        let _ = net::teardown(&plan).await;
        return Err(e.context("preparing the node namespaces"));
    }
    if let Err(e) = net::ensure_outside(&plan).await {
        let _ = net::teardown(&plan).await;
        return Err(e.context("preparing the outside namespace"));
    }
    Ok(plan)
}

/// Writes each node's kubeconfig (client certificate `system:node:<node>` / `system:nodes`,
/// server on the underlay gateway) unless present.
pub fn write_credentials(dir: &ClusterDir, pki: &Pki, plan: &Plan, port: u16) -> Result<()> {
    let url = format!("https://{}:{port}", plan.underlay.gateway);
    for node in &plan.nodes {
        let path = dir.node_kubeconfig(&node.name);
        if path.is_file() {
            continue;
        }
        std::fs::create_dir_all(dir.node_dir(&node.name))?;
        let (cert_pem, key_pem) = pki
            .issue_client(&format!("system:node:{}", node.name), &[NODES_GROUP])
            .with_context(|| format!("issuing the certificate of {}", node.name))?;
        let kubeconfig = kinet_pki::kubeconfig(
            &dir.name,
            &url,
            &pki.ca_cert_pem,
            &Credentials::ClientCert { cert_pem, key_pem },
        );
        state::write_file(&path, &kubeconfig, 0o600)?;
    }
    Ok(())
}

/// Starts the agents that are not running and waits until every node is Ready with a
/// heartbeat from this start (a Node left Ready by an earlier run does not count).
pub async fn start_and_wait(
    dir: &ClusterDir,
    home: &Path,
    plan: &Plan,
    client: &kube::Client,
) -> Result<()> {
    let step = Step::start("Starting agents");
    // Status times are whole seconds.
    let since = Timestamp::now().as_second() - 1;
    let mut started = Vec::new();
    for node in &plan.nodes {
        if agents::running(dir, &node.name).is_none() {
            started.push((node.name.as_str(), agents::spawn(dir, home, node)?));
        }
    }
    step.done();

    let step = Step::start("Waiting for nodes to be Ready");
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let list = nodes.list(&Default::default()).await;
        let pending: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| {
                let found = list.as_ref().ok().and_then(|l| {
                    l.items
                        .iter()
                        .find(|o| o.metadata.name.as_deref() == Some(&n.name))
                });
                !found.is_some_and(|o| ready_since(o, since))
            })
            .map(|n| n.name.as_str())
            .collect();
        if pending.is_empty() {
            step.done();
            return Ok(());
        }
        let mut dead = Vec::new();
        for (name, child) in &mut started {
            if child.try_wait()?.is_some() {
                dead.push(*name);
            }
        }
        if !dead.is_empty() || Instant::now() >= deadline {
            drop(step);
            for n in &pending {
                crate::process::print_log_tail(&dir.agent_log(n), 0);
            }
            if !dead.is_empty() {
                bail!("the agent of {} exited", dead.join(", "));
            }
            bail!(
                "nodes not Ready within {READY_TIMEOUT:?}: {}",
                pending.join(", ")
            );
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

fn ready_since(node: &Node, since: i64) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| {
            c.status == "True"
                && c.last_heartbeat_time
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() >= since)
        })
}

/// Stops every agent (only processes that are exactly our agents) and the pods' processes
/// (by their recorded PID and start time), and removes the network.
pub async fn teardown(dir: &ClusterDir, plan: &Plan) -> Result<Vec<(String, u32)>> {
    let mut stopped = Vec::new();
    for node in &plan.nodes {
        if let Some(pid) = agents::stop(dir, &node.name)? {
            stopped.push((node.name.clone(), pid));
        }
        // Pods outlive their agent (a restarted agent adopts them); the cluster's end is theirs.
        kinet_agent::pods::kill_all(&dir.node_dir(&node.name));
    }
    net::teardown(plan).await?;
    Ok(stopped)
}

/// `teardown` for a failed `up`: reports problems instead of returning them.
pub async fn abandon(dir: &ClusterDir, plan: &Plan) {
    if let Err(e) = teardown(dir, plan).await {
        eprintln!("   could not remove the nodes: {e:#}");
    }
}
