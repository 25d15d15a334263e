//! Leader election through a `coordination.k8s.io/v1` Lease, as kube-controller-manager's
//! `--leader-elect` does with client-go's leaderelection: every API server runs a candidate,
//! and only the one holding the Lease runs the control loops. It renews every retry period; when
//! no renewal succeeds within the renew deadline, or another holder shows up, it stops the loops
//! and campaigns again. The decisions are in [`decide`]; this module only reads and writes the
//! Lease.

mod decide;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

pub use decide::{decide, Observed, Step, Timing};

/// kube-controller-manager's Lease (`--leader-elect-resource-name`), in `kube-system`.
pub const CONTROLLER_MANAGER_LEASE: &str = "kube-controller-manager";

/// Where a candidate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Campaigning; no holder seen yet.
    Candidate,
    /// Another candidate holds the Lease.
    Follower { holder: String },
    /// This candidate holds the Lease and runs what it leads.
    Leader,
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
    observed: Observed,
    role: watch::Sender<Role>,
}

impl Elector {
    /// A candidate called `identity` for Lease `namespace/name`, and its role as it changes.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> (Elector, watch::Receiver<Role>) {
        let (role, rx) = watch::channel(Role::Candidate);
        let elector = Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: Observed::default(),
            role,
        };
        (elector, rx)
    }

    /// Campaigns forever: once the Lease is held, `lead()` starts what the leader runs, and what
    /// it returned is dropped (which must stop it) as soon as leadership is lost.
    pub async fn run<G>(mut self, mut lead: impl FnMut() -> G) {
        loop {
            self.acquire().await;
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            self.role.send_replace(Role::Leader);
            let led = lead();
            self.renew_until_lost().await;
            drop(led);
            tracing::warn!(lease = %self.name, identity = %self.identity,
                "leadership lost: what it ran is stopped; campaigning again");
            self.role.send_replace(Role::Candidate);
        }
    }

    /// Tries every retry period (with client-go's jitter) until the Lease is this candidate's.
    async fn acquire(&mut self) {
        loop {
            let bound = Instant::now() + self.timing.renew_deadline;
            match self.attempt(bound).await {
                Attempt::Held => return,
                Attempt::Taken(holder) => {
                    let next = Role::Follower { holder };
                    self.role.send_if_modified(|role| {
                        let changed = *role != next;
                        *role = next;
                        changed
                    });
                }
                Attempt::Failed => {}
            }
            let jitter = rand::rng().random_range(0.0..1.2);
            tokio::time::sleep(self.timing.retry_period.mul_f64(1.0 + jitter)).await;
        }
    }

    /// Renews every retry period; returns once a renewal failed for the whole renew deadline,
    /// or another candidate holds the Lease.
    async fn renew_until_lost(&mut self) {
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = Instant::now() + self.timing.renew_deadline;
            loop {
                match self.attempt(deadline).await {
                    Attempt::Held => break,
                    Attempt::Taken(_) => return,
                    Attempt::Failed => {}
                }
                let next = Instant::now() + self.timing.retry_period;
                if next >= deadline {
                    return;
                }
                tokio::time::sleep_until(next).await;
            }
        }
    }

    /// One round of read, decide and write, given up at `deadline`.
    async fn attempt(&mut self, deadline: Instant) -> Attempt {
        match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
            Ok(Ok(attempt)) => attempt,
            Ok(Err(e)) => {
                tracing::debug!(lease = %self.name, error = %e, "leader election round failed");
                Attempt::Failed
            }
            Err(_) => Attempt::Failed,
        }
    }

    async fn try_acquire_or_renew(&mut self) -> kube::Result<Attempt> {
        let stored = self.api.get_opt(&self.name).await?;
        let spec = stored.as_ref().and_then(|l| l.spec.as_ref());
        let now = Instant::now().into_std();
        let step = decide::decide(
            &self.identity,
            spec,
            &mut self.observed,
            self.timing,
            now,
            Timestamp::now(),
        );
        let (written, spec) = match step {
            Step::Follow { holder } => return Ok(Attempt::Taken(holder)),
            Step::Create(spec) => {
                let lease = self.lease(ObjectMeta::default(), spec.clone());
                (self.api.create(&PostParams::default(), &lease).await, spec)
            }
            Step::Update(spec) => {
                // The resourceVersion read makes the write a compare-and-swap.
                let meta = stored.map(|l| l.metadata).unwrap_or_default();
                let lease = self.lease(meta, spec.clone());
                let written = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await;
                (written, spec)
            }
        };
        match written {
            Ok(_) => {
                self.observed.see(&spec, now);
                Ok(Attempt::Held)
            }
            // Another candidate wrote first; the next round reads what it wrote.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Failed),
            Err(e) => Err(e),
        }
    }

    fn lease(&self, meta: ObjectMeta, spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..meta
            },
            spec: Some(spec),
        }
    }
}

/// How one round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// This candidate holds the Lease now.
    Held,
    /// Another candidate (named) holds an unexpired Lease.
    Taken(String),
    /// The API did not answer, or a concurrent write won: try again.
    Failed,
}
