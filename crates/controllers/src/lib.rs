//! The control loops that run in the control plane. Each is a client of the API, written the
//! kube-runtime way: a reflector (watch + local store), then an idempotent reconcile that
//! computes what should exist from what does, so a restart converges and never duplicates.
//!
//! - Lifecycle: [`namespace`] (deleting a namespace empties it), [`gc`] (ownerReferences),
//!   [`serviceaccounts`] (the `default` account of each namespace).
//! - Service discovery: [`endpoints`] (Endpoints and EndpointSlices from selectors).
//! - Workloads: [`deployment`], [`replicaset`], [`daemonset`], [`scheduler`], [`nodeipam`].
//! - [`events`]: the core/v1 Event recorder every loop reports through.

pub mod client;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod loadbalancer;
pub mod namespace;
pub mod nodeipam;
pub mod replicaset;
mod runtime;
pub mod scheduler;
pub mod serviceaccounts;

use kube::Client;

/// Cluster-wide settings the loops need.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The pod network every node's podCIDR is carved from.
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR.
    pub node_cidr_mask: u8,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            cluster_cidr: kinet_types::wellknown::CLUSTER_CIDR.into(),
            node_cidr_mask: 24,
        }
    }
}

/// Runs every control loop; a loop that fails is logged and restarted after a pause, as
/// kube-controller-manager's process supervisor would, so one bad loop never stops the others.
pub async fn run(client: Client, config: ControllerConfig) -> anyhow::Result<()> {
    let c = &client;
    tokio::join!(
        supervise("namespace", || namespace::run(c.clone())),
        supervise("garbage-collector", || gc::run(c.clone())),
        supervise("serviceaccount", || serviceaccounts::run(c.clone())),
        supervise("endpoints", || endpoints::run(c.clone())),
        supervise("deployment", || deployment::run(c.clone())),
        supervise("replicaset", || replicaset::run(c.clone())),
        supervise("daemonset", || daemonset::run(c.clone())),
        supervise("scheduler", || scheduler::run(c.clone())),
        supervise("nodeipam", || nodeipam::run(c.clone(), config.clone())),
        supervise("service-lb", || loadbalancer::run(c.clone())),
    );
    Ok(())
}

async fn supervise<F, Fut>(name: &str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        match start().await {
            Ok(()) => return,
            Err(e) => tracing::error!(controller = name, "control loop failed, restarting: {e:#}"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
