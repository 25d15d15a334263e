//! The node steps of `up` and `down`: network, credentials, agents, readiness, teardown.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kinet_pki::{Credentials, Pki};
use kube::Api;

use super::{agents, candidate_subnets, claims, net, Plan};
use crate::progress::Step;
use crate::state::{self, ClusterDir, ClusterInfo};
use crate::supervisor::Record;

const READY_POLL: Duration = Duration::from_millis(250);
/// The group every node's certificate carries, as the kubelet's does.
const NODES_GROUP: &str = "system:nodes";

/// The plan for a cluster as recorded (names do not depend on the subnet, so a cluster
/// that never claimed one can still be torn down).
pub fn recorded_plan(info: &ClusterInfo) -> Plan {
    let cidr = info.underlay.unwrap_or(candidate_subnets()[0]);
    Plan::new(&info.name, cidr, info.nodes).with_egress(info.egress)
}

/// Claims (or re-claims) the underlay, records it, and makes every node's namespace.
/// On failure nothing of the network is left behind.
pub async fn prepare(dir: &ClusterDir, info: &ClusterInfo) -> Result<Plan> {
    let own = dir.cluster_json();
    let reserved = claims::held_by_others(Path::new(claims::CLAIMS_DIR), &own);
    let cidr = match net::ensure_underlay(&info.name, info.underlay, &reserved).await {
        Ok(cidr) => cidr,
        Err(e) => {
            let _ = net::teardown(&recorded_plan(info)).await;
            return Err(e);
        }
    };
    let plan = Plan::new(&info.name, cidr, info.nodes).with_egress(info.egress);
    if info.underlay != Some(cidr) {
        let mut updated = info.clone();
        updated.underlay = Some(cidr);
        if let Err(e) = dir.save_info(&updated) {
            let _ = net::teardown(&plan).await;
            return Err(e.into());
        }
    }
    // Written at every `up`: /run is emptied at reboot.
    if let Err(e) = claims::claim(Path::new(claims::CLAIMS_DIR), cidr, &own) {
        let _ = net::teardown(&plan).await;
        return Err(anyhow::Error::from(e).context("recording the underlay's claim"));
    }
    let server_ips: Vec<_> = (1..info.api_servers)
        .map(|i| crate::apiservers::underlay_ip(cidr, i))
        .collect();
    if let Err(e) = net::ensure_api_server_addrs(&plan, &server_ips).await {
        let _ = net::teardown(&plan).await;
        return Err(e.context("adding the API servers' addresses"));
    }
    if let Err(e) = net::ensure_nodes(&plan).await {
        let _ = net::teardown(&plan).await;
        return Err(e.context("preparing the node namespaces"));
    }
    if let Err(e) = net::ensure_outside(&plan).await {
        let _ = net::teardown(&plan).await;
        return Err(e.context("preparing the outside namespace"));
    }
    if let Err(e) = net::ensure_host_egress(&plan).await {
        let _ = net::teardown(&plan).await;
        return Err(e);
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

/// The agents `up` watches while it waits: an agent that exits, even one its supervisor
/// restarts, or a supervisor that ends, makes `up` fail.
pub struct AgentWatch {
    /// Supervisors started by this `up`.
    started: Vec<(String, Child)>,
    /// Agents that already ran, with the exits their supervisor had recorded.
    others: Vec<(String, u32)>,
    /// When the agents were started: a Node status or Lease from before is an earlier run's.
    since: Timestamp,
}

fn exits(dir: &ClusterDir, node: &str) -> u32 {
    Record::load(dir, node).map_or(0, |r| r.exits)
}

impl AgentWatch {
    /// Nodes whose agent has exited since the watch began.
    fn dead(&mut self, dir: &ClusterDir) -> Vec<String> {
        let mut dead: Vec<String> = self
            .started
            .iter_mut()
            .filter_map(|(node, child)| {
                let gone = !matches!(child.try_wait(), Ok(None)) || exits(dir, node) > 0;
                gone.then(|| node.clone())
            })
            .collect();
        dead.extend(self.others.iter().filter_map(|(node, before)| {
            let gone = exits(dir, node) > *before
                || (agents::running(dir, node).is_none()
                    && agents::supervisor(dir, node).is_none());
            gone.then(|| node.clone())
        }));
        dead
    }

    /// Fails, with the dead agents' log tails, if any agent has exited: `up` never reports
    /// a cluster whose agent is dead.
    pub fn check(&mut self, dir: &ClusterDir) -> Result<()> {
        let dead = self.dead(dir);
        if dead.is_empty() {
            return Ok(());
        }
        for n in &dead {
            crate::process::print_log_tail(&dir.agent_log(n), 0);
        }
        bail!("the agent of {} exited", dead.join(", "))
    }
}

/// Starts the agents that are not running, each under a supervisor (one still waiting out
/// a back-off is replaced).
pub fn start_agents(dir: &ClusterDir, home: &Path, plan: &Plan) -> Result<AgentWatch> {
    let step = Step::start("Starting agents");
    let since = Timestamp::now();
    let mut watch = AgentWatch {
        started: Vec::new(),
        others: Vec::new(),
        since,
    };
    for node in &plan.nodes {
        if agents::running(dir, &node.name).is_none() {
            agents::stop(dir, &node.name)?;
            watch
                .started
                .push((node.name.clone(), agents::spawn(dir, home, node)?));
        } else {
            watch
                .others
                .push((node.name.clone(), exits(dir, &node.name)));
        }
    }
    step.done();
    Ok(watch)
}

/// Waits until every node is Ready with a heartbeat from after the agents started (a Node
/// left Ready by an earlier run does not count).
pub async fn wait_ready(
    dir: &ClusterDir,
    plan: &Plan,
    client: &kube::Client,
    agents: &mut AgentWatch,
    deadline: Instant,
) -> Result<()> {
    let step = Step::start("Waiting for nodes to be Ready");
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), kinet_agent::lease::NAMESPACE);
    loop {
        let nodes = nodes.list(&Default::default()).await.map(|l| l.items);
        let leases = leases.list(&Default::default()).await.map(|l| l.items);
        let pending: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| {
                let named = |m: &ObjectMeta| m.name.as_deref() == Some(&n.name);
                let node = nodes.iter().flatten().find(|o| named(&o.metadata));
                let lease = leases.iter().flatten().find(|l| named(&l.metadata));
                !node.is_some_and(|o| ready_since(o, lease, agents.since))
            })
            .map(|n| n.name.as_str())
            .collect();
        if pending.is_empty() {
            step.done();
            return Ok(());
        }
        agents.check(dir)?;
        if Instant::now() >= deadline {
            drop(step);
            for n in &pending {
                crate::process::print_log_tail(&dir.agent_log(n), 0);
            }
            bail!("nodes not Ready in time: {}", pending.join(", "));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Whether `node` is Ready as posted by an agent started at `since`. Status times are whole
/// seconds, so an agent stopped in the same second as its successor started could pass for
/// it; the Lease's microseconds tell the two apart.
pub fn ready_since(node: &Node, lease: Option<&Lease>, since: Timestamp) -> bool {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .is_some_and(|t| t.0 >= since);
    renewed
        && node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| {
                c.status == "True"
                    && c.last_heartbeat_time
                        .as_ref()
                        .is_some_and(|t| t.0.as_second() >= since.as_second())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, heartbeat: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat},
            ]},
        }))
        .unwrap()
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n", "renewTime": renewed},
        }))
        .unwrap()
    }

    #[test]
    fn ready_counts_only_from_the_agent_started_since() {
        let since: Timestamp = "2026-01-01T00:00:10.500Z".parse().unwrap();
        let fresh = lease("2026-01-01T00:00:10.600000Z");
        let ok = node("True", "2026-01-01T00:00:10Z");
        assert!(ready_since(&ok, Some(&fresh), since));
        assert!(!ready_since(
            &node("False", "2026-01-01T00:00:11Z"),
            Some(&fresh),
            since
        ));
        // The previous run's status, a second earlier.
        assert!(!ready_since(
            &node("True", "2026-01-01T00:00:09Z"),
            Some(&fresh),
            since
        ));
        // Same second, but the Lease is the stopped agent's: no word from the new one yet.
        let stale = lease("2026-01-01T00:00:10.100000Z");
        assert!(!ready_since(&ok, Some(&stale), since));
        assert!(!ready_since(&ok, None, since));
    }
}
