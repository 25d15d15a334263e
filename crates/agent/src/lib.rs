//! kinet's node agent: what the kubelet does for a node's registration and liveness.
//!
//! - [`node`]: the Node object and its status, pure data;
//! - [`lease`]: the Lease in `kube-node-lease`, pure data;
//! - [`readiness`]: what the Ready condition says, from the pod network and the proxy;
//! - [`host`]: machine facts (CPU, memory, kernel, OS image);
//! - [`sync`]: the API calls, each idempotent;
//! - [`run`]: register (retrying until the API answers), then renew the Lease and post the
//!   status heartbeat on their intervals, and at once when readiness changes, until cancelled;
//! - [`network`]: the pod network of the node (`cbr0`, `flannel.1`, routes to other nodes);
//! - [`pods`]: sandboxes, containers, probes and pod status for the pods bound here;
//! - [`policy`]: NetworkPolicy enforced in the node's kernel;
//! - [`failover`]: the client-side load balancer over several API servers.
//!
//! The agent runs inside its node's network namespace, so it reaches the API server over the
//! underlay like a kubelet on a real machine.

pub mod failover;
pub mod host;
pub mod lease;
pub mod network;
pub mod node;
pub mod pods;
pub mod policy;
pub mod readiness;
pub mod sync;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use tokio::sync::watch;

pub use node::{Capacity, NodeConfig, SystemInfo};
pub use readiness::{Check, Readiness};

/// Why an agent step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{op}: {source}")]
    Api {
        /// What was being done.
        op: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// A local `Result` alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node it registers.
    pub node: NodeConfig,
    /// Lease renewal period (the kubelet: 10 s).
    pub lease_interval: Duration,
    /// Status heartbeat period (the kubelet's nodeStatusUpdateFrequency: 10 s).
    pub status_interval: Duration,
    /// Wait between failed attempts (registration, renewals).
    pub retry: Duration,
    /// The image store whose images the Node's `status.images` lists.
    pub images_dir: Option<std::path::PathBuf>,
}

impl AgentConfig {
    /// The kubelet's periods: lease and status every 10 s, retries after 1 s.
    pub fn new(node: NodeConfig) -> AgentConfig {
        AgentConfig {
            node,
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(10),
            retry: Duration::from_secs(1),
            images_dir: None,
        }
    }

    /// Reports the images of the store at `dir` in the Node's status.
    pub fn with_images(mut self, dir: std::path::PathBuf) -> AgentConfig {
        self.images_dir = Some(dir);
        self
    }

    /// Lease renewals a quarter of the cluster's node-monitor grace period apart (the
    /// kubelet renews every 10 s of the 40 s default), so one late renewal never makes the
    /// node look dead when the grace is shortened.
    pub fn with_grace_period(mut self, grace: Duration) -> AgentConfig {
        self.lease_interval =
            (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        self
    }
}

/// Registers the node and keeps it alive, Ready as `readiness` says; returns only if
/// cancelled (drop the future). Failures after registration are logged and retried: the API
/// server may restart.
pub async fn run(
    client: Client,
    cfg: AgentConfig,
    mut readiness: watch::Receiver<Readiness>,
) -> Result<()> {
    let name = cfg.node.name.clone();
    let node = loop {
        match sync::register(&client, &cfg.node).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(node = %name, "registration failed, retrying: {e}");
                tokio::time::sleep(cfg.retry).await;
            }
        }
    };
    let uid = node.metadata.uid.clone();
    tracing::info!(node = %name, uid = uid.as_deref().unwrap_or(""), "node registered");
    let mut previous = node.status.filter(|s| s.conditions.is_some());
    let mut lease_tick = tokio::time::interval(cfg.lease_interval);
    let mut status_tick = tokio::time::interval(cfg.status_interval);
    let mut reported: Option<readiness::Verdict> = None;
    let store = cfg
        .images_dir
        .as_deref()
        .map(kinet_oci_store::Store::open)
        .transpose()
        .unwrap_or_else(|e| {
            tracing::warn!("opening the image store: {e}");
            None
        });
    let mut images_cache = pods::image::NodeImages::default();
    let mut watching = true;
    loop {
        tokio::select! {
            _ = status_tick.tick() => {}
            changed = readiness.changed(), if watching => {
                // A closed channel leaves the last word standing; the heartbeat goes on.
                watching = changed.is_ok();
            }
            _ = lease_tick.tick() => {
                if let Err(e) = sync::renew_lease(&client, &name, uid.as_deref(), Timestamp::now()).await {
                    tracing::warn!(node = %name, "lease renewal failed: {e}");
                    lease_tick.reset_after(cfg.retry);
                }
                continue;
            }
        }
        let verdict = readiness.borrow_and_update().verdict();
        if reported.as_ref() != Some(&verdict) {
            log_verdict(&name, &verdict);
        }
        let images = match &store {
            Some(store) => Some(images_cache.get(store).await),
            None => None,
        };
        match sync::post_status(
            &client,
            &cfg.node,
            Timestamp::now(),
            previous.as_ref(),
            &verdict,
            images,
        )
        .await
        {
            Ok(s) => {
                previous = Some(s);
                reported = Some(verdict);
                status_tick.reset();
            }
            Err(e) => {
                tracing::warn!(node = %name, "status update failed: {e}");
                status_tick.reset_after(cfg.retry);
            }
        }
    }
}

/// The agent's log says what its Node's Ready condition says, when that changes.
fn log_verdict(node: &str, verdict: &readiness::Verdict) {
    if verdict.status == "True" {
        tracing::info!(node, "node is Ready");
    } else {
        tracing::warn!(
            node,
            reason = verdict.reason,
            "node is not Ready: {}",
            verdict.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_renewals_fit_four_times_in_the_grace_period() {
        let cfg = |grace| {
            AgentConfig::new(NodeConfig {
                name: "n".into(),
                internal_ip: std::net::Ipv4Addr::LOCALHOST,
                control_plane: false,
                capacity: Capacity {
                    cpu: 1,
                    memory_kib: 1,
                    pods: 1,
                },
                system: SystemInfo::default(),
            })
            .with_grace_period(Duration::from_secs(grace))
            .lease_interval
        };
        assert_eq!(cfg(40), Duration::from_secs(10));
        assert_eq!(cfg(5), Duration::from_millis(1250));
        assert_eq!(cfg(400), Duration::from_secs(10));
    }
}
