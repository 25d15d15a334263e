//! The control loops that run in the control plane. Each is a client of the API, written the
//! kube-runtime way: a reflector (watch + local store), then an idempotent reconcile that
//! computes what should exist from what does, so a restart converges and never duplicates.
//!
//! - Lifecycle: [`namespace`] (deleting a namespace empties it), [`gc`] (ownerReferences),
//!   [`serviceaccounts`] (the `default` account of each namespace).
//! - Service discovery: [`endpoints`] (Endpoints and EndpointSlices from selectors).
//! - Workloads: [`deployment`], [`replicaset`], [`daemonset`], [`statefulset`], [`job`], [`cronjob`],
//!   [`scheduler`], [`nodeipam`].
//! - Availability: [`disruption`] (PodDisruptionBudget status).
//! - Node health: [`nodelifecycle`] (silent nodes turn Unknown, taints, pod eviction).
//! - Storage: [`persistentvolume`] (claims stay Pending and say why: kinet has no volumes).
//! - Nodes joining: [`certificates`] (approve and sign node client CSRs), [`tokencleaner`]
//!   (expired bootstrap tokens).
//! - [`events`]: the core/v1 Event recorder every loop reports through.
//! - [`start`] runs each loop as its own supervised task, each with its own [`identity`].

pub mod certificates;
pub mod client;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
mod error;
pub mod events;
pub mod gc;
pub mod identity;
pub mod job;
pub mod loadbalancer;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
mod owners;
pub mod persistentvolume;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;
pub mod serviceaccounts;
pub mod statefulset;
pub mod tokencleaner;

mod supervise;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

pub use error::LoopError;
pub use identity::Clients;
pub use supervise::{supervise, Backoff, LoopMetrics};

/// Cluster-wide settings the loops need.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The pod network every node's podCIDR is carved from.
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR.
    pub node_cidr_mask: u8,
    /// How long a node may stay silent before it is Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// The cluster CA that signs approved node client CSRs; `None`: no signer runs.
    pub signing_ca: Option<kinet_pki::Pki>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            cluster_cidr: kinet_types::wellknown::CLUSTER_CIDR.into(),
            node_cidr_mask: 24,
            node_monitor_grace_period: nodelifecycle::Settings::default().node_monitor_grace_period,
            signing_ca: None,
        }
    }
}

/// Starts every control loop on a task of its own, each restarted with back-off after an
/// error or a panic (as kube-controller-manager's controllers are independent goroutines),
/// so one bad loop never stops the others or the API server. Their restarts are counted
/// in `metrics`. Each loop talks to the API with its own client of `clients`, as its upstream
/// controller's service account (or as `system:kube-scheduler`).
pub fn start(clients: &Clients, config: ControllerConfig, metrics: &Arc<LoopMetrics>) {
    let m = metrics;
    let c = |name: &str| clients.controller(name);
    spawn_loop("namespace", c("namespace-controller"), m, namespace::run);
    spawn_loop(
        "garbage-collector",
        c("generic-garbage-collector"),
        m,
        gc::run,
    );
    spawn_loop(
        "serviceaccount",
        c("service-account-controller"),
        m,
        serviceaccounts::run,
    );
    let (skips, slices) = (m.endpoint_skips.clone(), c("endpointslice-controller"));
    spawn_loop("endpoints", c("endpoint-controller"), m, move |c| {
        endpoints::run_with(c, slices.clone(), skips.clone())
    });
    spawn_loop("deployment", c("deployment-controller"), m, deployment::run);
    spawn_loop("replicaset", c("replicaset-controller"), m, replicaset::run);
    spawn_loop("daemonset", c("daemon-set-controller"), m, daemonset::run);
    spawn_loop(
        "statefulset",
        c("statefulset-controller"),
        m,
        statefulset::run,
    );
    spawn_loop("job", c("job-controller"), m, job::run);
    spawn_loop("cronjob", c("cronjob-controller"), m, cronjob::run);
    spawn_loop("scheduler", clients.scheduler(), m, scheduler::run);
    let ipam = config.clone();
    spawn_loop("nodeipam", c("node-controller"), m, move |c| {
        nodeipam::run(c, ipam.clone())
    });
    spawn_loop("service-lb", c("service-controller"), m, loadbalancer::run);
    spawn_loop(
        "persistentvolume",
        c("persistent-volume-binder"),
        m,
        persistentvolume::run,
    );
    spawn_loop("disruption", c("disruption-controller"), m, disruption::run);
    let lifecycle = nodelifecycle::Settings {
        node_monitor_grace_period: config.node_monitor_grace_period,
    };
    spawn_loop("nodelifecycle", c("node-controller"), m, move |c| {
        nodelifecycle::run(c, lifecycle)
    });
    spawn_loop("tokencleaner", c("token-cleaner"), m, tokencleaner::run);
    if let Some(ca) = config.signing_ca {
        spawn_loop("csr", c("certificate-controller"), m, move |c| {
            certificates::run(c, ca.clone())
        });
    }
}

fn spawn_loop<Fut>(
    name: &'static str,
    client: Client,
    metrics: &Arc<LoopMetrics>,
    run: impl Fn(Client) -> Fut + Send + 'static,
) where
    Fut: std::future::Future<Output = Result<(), LoopError>> + Send + 'static,
{
    supervise(name, metrics.clone(), Backoff::default(), move || {
        run(client.clone())
    });
}
