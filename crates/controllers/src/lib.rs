//! The control loops that run in the control plane. Each is a client of the API, written the
//! kube-runtime way: a reflector (watch + local store), then an idempotent reconcile that
//! computes what should exist from what does, so a restart converges and never duplicates.
//!
//! - Lifecycle: [`namespace`] (deleting a namespace empties it), [`gc`] (ownerReferences),
//!   [`serviceaccounts`] (the `default` account of each namespace).
//! - Service discovery: [`endpoints`] (Endpoints and EndpointSlices from selectors).
//! - Workloads: [`deployment`], [`replicaset`], [`daemonset`], [`scheduler`], [`nodeipam`].
//! - [`events`]: the core/v1 Event recorder every loop reports through.

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod nodeipam;
pub mod replicaset;
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
        ControllerConfig { cluster_cidr: "10.244.0.0/16".into(), node_cidr_mask: 24 }
    }
}

/// Runs every control loop until one fails fatally.
pub async fn run(client: Client, config: ControllerConfig) -> anyhow::Result<()> {
    tokio::try_join!(
        namespace::run(client.clone()),
        gc::run(client.clone()),
        serviceaccounts::run(client.clone()),
        endpoints::run(client.clone()),
        deployment::run(client.clone()),
        replicaset::run(client.clone()),
        daemonset::run(client.clone()),
        scheduler::run(client.clone()),
        nodeipam::run(client.clone(), config.clone()),
    )?;
    Ok(())
}
