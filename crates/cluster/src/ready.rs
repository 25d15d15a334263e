//! `up`'s last steps: wait until the cluster is usable, as a user means it. The add-ons'
//! Deployments are Available, and cluster DNS answers `kubernetes.default.svc.cluster.local`
//! through its Service address from inside a node, the path every pod's lookups take.
//!
//! The checks on API objects and DNS messages are pure functions; the waits around them
//! poll until a deadline and, on failure, show what explains it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

use crate::addons::{DEPLOYMENT, DNS_SERVICE_IP, NAMESPACE};
use crate::nodes::{AgentWatch, Plan};
use crate::progress::Step;
use crate::state::ClusterDir;

const POLL: Duration = Duration::from_millis(250);
/// One DNS attempt; a lost UDP datagram is retried after this.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// The name every cluster resolves (to [`crate::up::KUBERNETES_SERVICE_IP`]).
pub const PROBE_NAME: &str = "kubernetes.default.svc.cluster.local.";

/// Whether the Deployment controller has seen the current spec and says Available.
pub fn deployment_available(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    observed
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
}

/// One line per pod (phase, node, container states) and its events, for a failed wait.
pub fn describe_pods(pods: &[Pod], events: &[Event]) -> Vec<String> {
    let mut lines = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "<unscheduled>".into());
        let containers: Vec<String> = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| {
                let state = c.state.clone().unwrap_or_default();
                let what = if let Some(w) = state.waiting {
                    format!("waiting: {}", w.reason.or(w.message).unwrap_or_default())
                } else if let Some(t) = state.terminated {
                    format!(
                        "terminated: {} (exit {})",
                        t.reason.unwrap_or_default(),
                        t.exit_code
                    )
                } else if c.ready {
                    "ready".into()
                } else {
                    "running, not ready".into()
                };
                format!("{} {what}, {} restarts", c.name, c.restart_count)
            })
            .collect();
        lines.push(format!(
            "pod {name} on {node}: {}{}",
            status.phase.unwrap_or_else(|| "Pending".into()),
            if containers.is_empty() {
                String::new()
            } else {
                format!(" ({})", containers.join("; "))
            }
        ));
        for e in events
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(&name))
        {
            lines.push(format!(
                "  {} {}: {}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            ));
        }
    }
    lines
}

/// A recursive A query for `name` with message ID `id`.
pub fn a_query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    Ok(m.to_vec()?)
}

/// The A records of the response to query `id`.
pub fn a_answers(id: u16, response: &[u8]) -> Result<Vec<Ipv4Addr>> {
    let m = Message::from_vec(response).context("decoding the DNS response")?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        bail!("not the response to query {id}");
    }
    if m.metadata.response_code != ResponseCode::NoError {
        bail!("answered {}", m.metadata.response_code);
    }
    Ok(m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// Waits until every add-on Deployment is Available.
pub async fn wait_addons(
    dir: &ClusterDir,
    client: &kube::Client,
    deployments: &[(&str, &str)],
    agents: &mut AgentWatch,
    deadline: Instant,
) -> Result<()> {
    let step = Step::start("Waiting for add-ons to be Available");
    for &(ns, name) in deployments {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        loop {
            let d = api.get_opt(name).await;
            if matches!(&d, Ok(Some(d)) if deployment_available(d)) {
                break;
            }
            agents.check(dir)?;
            if Instant::now() >= deadline {
                drop(step);
                print_addon_pods(client, ns, d.ok().flatten().as_ref()).await;
                bail!("Deployment {ns}/{name} was not Available in time");
            }
            tokio::time::sleep(POLL).await;
        }
    }
    step.done();
    Ok(())
}

/// Waits until cluster DNS answers `kubernetes.default` from the first node's namespace.
pub async fn wait_dns(
    dir: &ClusterDir,
    client: &kube::Client,
    plan: &Plan,
    agents: &mut AgentWatch,
    deadline: Instant,
) -> Result<()> {
    let step = Step::start("Waiting for cluster DNS to answer");
    let node = plan.nodes.first().context("a cluster with nodes")?;
    let server = SocketAddrV4::new(DNS_SERVICE_IP.parse()?, 53);
    let want: Ipv4Addr = crate::up::KUBERNETES_SERVICE_IP.parse()?;
    let mut id: u16 = rand::random();
    loop {
        id = id.wrapping_add(1);
        let last = match query_from(&node.netns, server, id).await {
            Ok(ips) if ips.contains(&want) => {
                step.done();
                return Ok(());
            }
            Ok(ips) => format!("answered {ips:?}, not {want}"),
            Err(e) => format!("{e:#}"),
        };
        agents.check(dir)?;
        if Instant::now() >= deadline {
            drop(step);
            let (ns, name) = (NAMESPACE, DEPLOYMENT);
            let d = Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .ok()
                .flatten();
            print_addon_pods(client, ns, d.as_ref()).await;
            crate::process::print_log_tail(&dir.control_plane_log(0), 0);
            bail!(
                "no DNS answer for {PROBE_NAME} through {server} from {}: {last}",
                node.name
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One query over UDP from a socket opened inside `netns` (a socket stays in the namespace
/// it was made in, so the runtime's threads never switch namespace).
async fn query_from(netns: &str, server: SocketAddrV4, id: u16) -> Result<Vec<Ipv4Addr>> {
    let ns = kinet_netns::NetNs::open(netns)?;
    let socket = ns.run(|| std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))??;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    socket
        .send_to(&a_query(id, PROBE_NAME)?, SocketAddr::V4(server))
        .await?;
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .context("no answer within 1s")??;
        // A late answer to an earlier attempt, or a stray datagram, is skipped.
        if from == SocketAddr::V4(server) {
            if let Ok(ips) = a_answers(id, &buf[..n]) {
                return Ok(ips);
            }
        }
    }
}

/// Prints the add-on's pods and their events, which say why it is not Available.
async fn print_addon_pods(client: &kube::Client, ns: &str, deployment: Option<&Deployment>) {
    let Some(labels) = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.selector.match_labels.clone())
    else {
        eprintln!("\nThe add-on's Deployment is missing.");
        return;
    };
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    eprintln!("\nPods of the add-on ({}):", selector.join(","));
    let lines = describe_pods(&pods, &events);
    if lines.is_empty() {
        eprintln!("  none");
    }
    for line in lines {
        eprintln!("  {line}");
    }
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;
