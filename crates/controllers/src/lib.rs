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
//! - [`start`] runs each loop as its own supervised task, each with its own [`identity`];
//!   [`leaderelection`] lets only one of several API servers run them, as
//!   kube-controller-manager's `--leader-elect`.

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
pub mod leaderelection;
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
/// controller's service account (or as `system:kube-scheduler`). Dropping what it returns
/// stops them all (leadership was lost).
#[must_use = "dropping the loops stops them"]
pub fn start(clients: &Clients, config: ControllerConfig, metrics: &Arc<LoopMetrics>) -> Loops {
    let mut loops = Loops(Vec::new());
    let (m, l) = (metrics, &mut loops);
    let c = |name: &str| clients.controller(name);
    spawn_loop(l, "namespace", c("namespace-controller"), m, namespace::run);
    spawn_loop(
        l,
        "garbage-collector",
        c("generic-garbage-collector"),
        m,
        gc::run,
    );
    spawn_loop(
        l,
        "serviceaccount",
        c("service-account-controller"),
        m,
        serviceaccounts::run,
    );
    let (skips, slices) = (m.endpoint_skips.clone(), c("endpointslice-controller"));
    spawn_loop(l, "endpoints", c("endpoint-controller"), m, move |c| {
        endpoints::run_with(c, slices.clone(), skips.clone())
    });
    spawn_loop(
        l,
        "deployment",
        c("deployment-controller"),
        m,
        deployment::run,
    );
    spawn_loop(
        l,
        "replicaset",
        c("replicaset-controller"),
        m,
        replicaset::run,
    );
    spawn_loop(
        l,
        "daemonset",
        c("daemon-set-controller"),
        m,
        daemonset::run,
    );
    spawn_loop(
        l,
        "statefulset",
        c("statefulset-controller"),
        m,
        statefulset::run,
    );
    spawn_loop(l, "job", c("job-controller"), m, job::run);
    spawn_loop(l, "cronjob", c("cronjob-controller"), m, cronjob::run);
    spawn_loop(l, "scheduler", clients.scheduler(), m, scheduler::run);
    let ipam = config.clone();
    spawn_loop(l, "nodeipam", c("node-controller"), m, move |c| {
        nodeipam::run(c, ipam.clone())
    });
    spawn_loop(
        l,
        "service-lb",
        c("service-controller"),
        m,
        loadbalancer::run,
    );
    spawn_loop(
        l,
        "persistentvolume",
        c("persistent-volume-binder"),
        m,
        persistentvolume::run,
    );
    spawn_loop(
        l,
        "disruption",
        c("disruption-controller"),
        m,
        disruption::run,
    );
    let lifecycle = nodelifecycle::Settings {
        node_monitor_grace_period: config.node_monitor_grace_period,
    };
    spawn_loop(l, "nodelifecycle", c("node-controller"), m, move |c| {
        nodelifecycle::run(c, lifecycle)
    });
    spawn_loop(l, "tokencleaner", c("token-cleaner"), m, tokencleaner::run);
    if let Some(ca) = config.signing_ca {
        spawn_loop(l, "csr", c("certificate-controller"), m, move |c| {
            certificates::run(c, ca.clone())
        });
    }
    loops
}

/// The supervised control loops [`start`] began; dropping this aborts them.
#[derive(Debug)]
pub struct Loops(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Loops {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

fn spawn_loop<Fut>(
    loops: &mut Loops,
    name: &'static str,
    client: Client,
    metrics: &Arc<LoopMetrics>,
    run: impl Fn(Client) -> Fut + Send + 'static,
) where
    Fut: std::future::Future<Output = Result<(), LoopError>> + Send + 'static,
{
    let handle = supervise(name, metrics.clone(), Backoff::default(), move || {
        run(client.clone())
    });
    loops.0.push(handle);
}
