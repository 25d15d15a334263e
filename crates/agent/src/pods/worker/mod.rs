//! One pod's worker: sets up the sandbox, starts and restarts containers, runs probes, posts
//! the status, and on deletion stops everything in order (containers with their grace
//! period, then the pause process, then the network) before confirming the deletion.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kinet_controllers::events::{object_ref, EventType};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::image;
use super::probe::Tracker;
use super::record::{ContainerRecord, PodRecord};
use super::shim::IoPaths;
use super::status::{self, Record, State};
use super::{ContainerView, PodView, Runtime};

mod containers;
mod probing;
mod pulling;
mod setup;
mod volumes;

use probing::trackers;

/// How long a deleted pod's network outlives its "not ready" status: time for the EndpointSlice
/// controller and every node's proxy to drop it.
const UNREADY_LINGER: Duration = Duration::from_millis(300);

/// Retry delay for a sandbox or container that could not be set up.
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

enum Event {
    Exited {
        idx: usize,
        instance: u64,
        code: Option<i32>,
    },
    Probe {
        idx: usize,
        instance: u64,
        kind: Kind,
        result: Result<(), String>,
    },
}

struct Slot {
    spec: Container,
    /// An ephemeral container: started once, never restarted, reported apart.
    ephemeral: bool,
    instance: u64,
    due: Option<Instant>,
    backoff: u32,
    started: Option<Instant>,
    env: Vec<(String, String)>,
    probes: Vec<(Kind, Tracker)>,
    /// An ephemeral container's `targetContainerName`, whose PID namespace it shares.
    target: Option<String>,
    /// Whether the running instance has a cgroup.
    cgroup: bool,
}

impl Slot {
    fn new((spec, ephemeral, target): Spec) -> Slot {
        Slot {
            spec,
            ephemeral,
            target,
            cgroup: false,
            instance: 0,
            due: Some(Instant::now()),
            backoff: 0,
            started: None,
            env: Vec::new(),
            probes: Vec::new(),
        }
    }
}

fn new_record(c: &Container) -> ContainerRecord {
    ContainerRecord {
        record: Record::waiting(
            &c.name,
            c.image.as_deref().unwrap_or(""),
            "ContainerCreating",
        ),
        process: None,
    }
}

/// A container, whether it is ephemeral, and an ephemeral container's target.
type Spec = (Container, bool, Option<String>);

/// The pod's containers, then its ephemeral containers (read as Containers: the same fields
/// but the target, kept apart).
fn containers_of(pod: &Pod) -> Vec<Spec> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let ephemeral = spec.ephemeral_containers.iter().flatten().filter_map(|e| {
        let c = serde_json::from_value::<Container>(serde_json::to_value(e).ok()?).ok()?;
        Some((c, true, e.target_container_name.clone()))
    });
    spec.containers
        .iter()
        .cloned()
        .map(|c| (c, false, None))
        .chain(ephemeral)
        .collect()
}

struct Worker {
    rt: Arc<Runtime>,
    pod: Pod,
    gone: bool,
    rec: PodRecord,
    saved: Option<PodRecord>,
    sandbox_ready: bool,
    sandbox_due: Instant,
    /// When the volumes are next refreshed (configMap, secret and projected updates).
    volumes_due: Instant,
    /// Failed mounts in a row, for the retry back-off.
    mount_failures: u32,
    /// Service-account tokens of projected volumes, with when to renew them.
    volume_tokens: volumes::Tokens,
    /// What each volume mounts from, once set up.
    volumes: std::collections::BTreeMap<String, crate::pods::volumes::Mountable>,
    start_time: Timestamp,
    slots: Vec<Slot>,
    tx: mpsc::UnboundedSender<Event>,
    last_status: Option<serde_json::Value>,
    /// The image pull back-off of this pod's images.
    pulls: image::Backoff,
}

/// Runs one pod until it is deleted and cleaned up.
pub(super) async fn run(
    rt: Arc<Runtime>,
    pod: Pod,
    mut rx: watch::Receiver<Option<Pod>>,
    adopt: Option<PodRecord>,
) {
    let uid = pod.uid().unwrap_or_default();
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut changes = rt.objects.subscribe();
    let mut w = Worker::new(rt.clone(), pod, adopt, tx);
    w.adopt();
    rt.objects.refer(&uid, w.references());
    loop {
        if w.pod.metadata.deletion_timestamp.is_some() || w.gone {
            w.terminate().await;
            break;
        }
        w.step().await;
        let wake = w.next_wake();
        tokio::select! {
            changed = rx.changed() => match changed {
                Ok(()) => match rx.borrow_and_update().clone() {
                    Some(p) => {
                        // downwardAPI files show labels and annotations.
                        if p.metadata.labels != w.pod.metadata.labels
                            || p.metadata.annotations != w.pod.metadata.annotations
                        {
                            w.volumes_due = Instant::now();
                        }
                        w.pod = p;
                        w.add_ephemeral();
                        rt.objects.refer(&uid, w.references());
                    }
                    None => w.gone = true,
                },
                Err(_) => w.gone = true,
            },
            Some(ev) = events.recv() => w.handle(ev).await,
            changed = changes.recv() => match changed {
                Ok(c) if w.projects(&c) => w.volumes_due = Instant::now(),
                Ok(_) => {}
                // Changes were missed: refresh from the cache.
                Err(broadcast::error::RecvError::Lagged(_)) => w.volumes_due = Instant::now(),
                Err(broadcast::error::RecvError::Closed) => changes = rt.objects.subscribe(),
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    rt.objects.refer(&uid, Default::default());
    rt.worker_done(&uid);
}

/// Removes what a previous agent left for a pod that no longer exists.
pub(super) async fn clean_orphan(rt: Arc<Runtime>, rec: PodRecord) {
    tracing::info!(pod = %format!("{}/{}", rec.namespace, rec.name), "removing the sandbox of a pod that is gone");
    for c in &rec.containers {
        if let Some(p) = c.process {
            rt.kernel.stop(p, Duration::from_secs(2)).await;
        }
    }
    remove_sandbox(&rt, &rec).await;
}

async fn remove_sandbox(rt: &Runtime, rec: &PodRecord) {
    if let Some(p) = rec.pause {
        rt.kernel.stop(p, Duration::from_secs(1)).await;
    }
    if !rec.netns.is_empty() {
        if let Err(e) = rt.kernel.remove_network(&rec.netns, &rec.host_veth).await {
            tracing::warn!(pod = %rec.name, "removing the pod network: {e:#}");
        }
    }
    rt.release_ip(&rec.uid);
    rt.kernel.remove_cgroups(&rt.pod_cgroup(&rec.uid));
    if let Err(e) = crate::pods::volumes::tear_down(&rt.dirs.dir(&rec.uid)) {
        tracing::warn!(pod = %rec.name, "removing the pod's volumes: {e}");
    }
    rt.dirs.remove(&rec.uid);
    rt.set_view(&rec.namespace, &rec.name, None);
}

impl Worker {
    fn new(
        rt: Arc<Runtime>,
        pod: Pod,
        adopt: Option<PodRecord>,
        tx: mpsc::UnboundedSender<Event>,
    ) -> Worker {
        let spec_containers = containers_of(&pod);
        let uid = pod.uid().unwrap_or_default();
        let mut rec = adopt.clone().unwrap_or_else(|| PodRecord {
            uid: uid.clone(),
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            netns: String::new(),
            host_network: false,
            ip: std::net::Ipv4Addr::UNSPECIFIED,
            host_veth: String::new(),
            pause: None,
            containers: Vec::new(),
        });
        // Keep what was recorded for containers that are still in the spec.
        rec.containers = spec_containers
            .iter()
            .map(|(c, _, _)| {
                rec.containers
                    .iter()
                    .find(|r| r.record.name == c.name)
                    .cloned()
                    .unwrap_or_else(|| new_record(c))
            })
            .collect();
        let slots = spec_containers
            .into_iter()
            .zip(&rec.containers)
            .map(|(spec, r)| {
                let mut slot = Slot::new(spec);
                // An ephemeral container runs once: one that already ran stays as it ended.
                if slot.ephemeral && !matches!(r.record.state, State::Waiting { .. }) {
                    slot.due = None;
                }
                slot
            })
            .collect();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        Worker {
            rt,
            pod,
            gone: false,
            saved: adopt,
            rec,
            sandbox_ready: false,
            sandbox_due: Instant::now(),
            volumes_due: Instant::now(),
            mount_failures: 0,
            volume_tokens: volumes::Tokens::new(),
            volumes: std::collections::BTreeMap::new(),
            start_time,
            slots,
            tx,
            last_status: None,
            pulls: image::Backoff::default(),
        }
    }

    /// Takes on the ephemeral containers added to the pod since it was last seen.
    fn add_ephemeral(&mut self) {
        for spec in containers_of(&self.pod) {
            if spec.1 && !self.slots.iter().any(|s| s.spec.name == spec.0.name) {
                self.rec.containers.push(new_record(&spec.0));
                self.slots.push(Slot::new(spec));
            }
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.rec.namespace, self.rec.name)
    }

    /// Takes over a sandbox and containers that a previous agent started, if still alive.
    fn adopt(&mut self) {
        let Some(pause) = self.rec.pause else { return };
        if !self.rt.kernel.alive(pause) {
            return;
        }
        self.sandbox_ready = true;
        tracing::info!(pod = %self.key(), pid = pause.pid, "adopted the running sandbox");
        for idx in 0..self.slots.len() {
            let cr = &self.rec.containers[idx];
            let (Some(p), State::Running { .. }) = (cr.process, &cr.record.state) else {
                continue;
            };
            if !self.rt.kernel.alive(p) {
                continue;
            }
            let slot = &mut self.slots[idx];
            slot.instance += 1;
            slot.due = None;
            slot.started = Some(Instant::now());
            slot.probes = trackers(&slot.spec, Instant::now());
            let (tx, instance) = (self.tx.clone(), slot.instance);
            let ended = self.rt.kernel.wait_adopted(p);
            tokio::spawn(async move {
                ended.await;
                let _ = tx.send(Event::Exited {
                    idx,
                    instance,
                    code: None,
                });
            });
        }
    }

    async fn step(&mut self) {
        let now = Instant::now();
        if !self.sandbox_ready && now >= self.sandbox_due {
            // Volumes come first, as the kubelet waits for them before the sandbox.
            if !self.sync_volumes().await {
                self.sandbox_due = self.volumes_due;
            } else if let Err(e) = self.setup_sandbox().await {
                let msg = format!("Failed to create pod sandbox: {e:#}");
                tracing::warn!(pod = %self.key(), "{msg}");
                self.event(EventType::Warning, "FailedCreatePodSandBox", &msg)
                    .await;
                self.sandbox_due = Instant::now() + RETRY;
            }
        }
        if self.sandbox_ready && now >= self.volumes_due && crate::pods::volumes::any(&self.pod) {
            self.sync_volumes().await;
        }
        if self.sandbox_ready {
            for idx in 0..self.slots.len() {
                if self.slots[idx].due.is_some_and(|d| d <= Instant::now()) {
                    self.start_container(idx).await;
                }
            }
            self.launch_probes();
        }
        self.publish().await;
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut wake = if !self.sandbox_ready {
            self.sandbox_due
        } else if crate::pods::volumes::any(&self.pod) {
            self.volumes_due
        } else {
            far
        };
        for s in &self.slots {
            if let Some(d) = s.due {
                wake = wake.min(d);
            }
            for (_, t) in &s.probes {
                if !t.busy {
                    wake = wake.min(t.next);
                }
            }
        }
        wake
    }

    /// Records an event in the background: a pod's start does not wait for its events.
    async fn event(&self, type_: EventType, reason: &str, message: &str) {
        let r = object_ref(&self.pod);
        let recorder = self.rt.recorder.clone();
        let (reason, message) = (reason.to_string(), message.to_string());
        tokio::spawn(async move { recorder.publish(&r, type_, &reason, &message).await });
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    /// Saves the record if it changed (and the sandbox exists to be recorded).
    fn persist(&mut self) {
        let sandbox = !self.rec.netns.is_empty() || self.rec.host_network;
        if self.saved.as_ref() != Some(&self.rec) && sandbox {
            match self.rt.dirs.save(&self.rec) {
                Ok(()) => self.saved = Some(self.rec.clone()),
                Err(e) => tracing::warn!(pod = %self.key(), "saving the pod record: {e}"),
            }
        }
    }

    /// Saves the record, refreshes the streaming view and posts the status when changed.
    async fn publish(&mut self) {
        self.persist();
        let io = |name: &str| IoPaths::in_dir(&self.rt.dirs.io(&self.rec.uid, name));
        let view = PodView {
            sandbox_pid: self.rec.pause.filter(|_| self.sandbox_ready).map(|p| p.pid),
            containers: self
                .slots
                .iter()
                .zip(&self.rec.containers)
                .map(|(s, c)| ContainerView {
                    name: s.spec.name.clone(),
                    running: matches!(c.record.state, State::Running { .. }),
                    env: s.env.clone(),
                    pid_file: matches!(c.record.state, State::Running { .. })
                        .then(|| io(&s.spec.name).pid),
                    spec_file: super::process::spec_file(
                        &self.rt.dirs.container(&self.rec.uid, &s.spec.name),
                    ),
                    enter: None,
                    log: Some(
                        self.rt
                            .dirs
                            .log(&self.rec.uid, &s.spec.name, c.record.restarts),
                    )
                    .filter(|p| p.exists()),
                    previous_log: (c.record.restarts > 0)
                        .then(|| {
                            self.rt
                                .dirs
                                .log(&self.rec.uid, &s.spec.name, c.record.restarts - 1)
                        })
                        .filter(|p| p.exists()),
                    stdin: (s.spec.stdin == Some(true)).then(|| io(&s.spec.name).stdin),
                    tty: (s.spec.tty == Some(true)).then(|| io(&s.spec.name).tty),
                })
                .collect(),
        };
        self.rt
            .set_view(&self.rec.namespace, &self.rec.name, Some(view));

        let sandbox = status::Sandbox {
            pod_ip: self.sandbox_ready.then(|| self.rec.ip.to_string()),
            host_ip: self.rt.cfg.host_ip.to_string(),
            start_time: Some(self.start_time),
            ready: self.sandbox_ready,
        };
        let (mut records, mut ephemeral) = (Vec::new(), Vec::new());
        for (s, c) in self.slots.iter().zip(&self.rec.containers) {
            let list = if s.ephemeral {
                &mut ephemeral
            } else {
                &mut records
            };
            list.push(c.record.clone());
        }
        let st = status::pod_status(&self.pod, &sandbox, &records, &ephemeral, Timestamp::now());
        let value = serde_json::to_value(&st).unwrap_or_default();
        let stored = self.pod.status.as_ref();
        if self.last_status.as_ref() == Some(&value) && status::conditions_agree(stored, &st) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.rt.client.clone(), &self.rec.namespace);
        match pods
            .patch_status(
                &self.rec.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": value})),
            )
            .await
        {
            Ok(_) => self.last_status = Some(value),
            Err(e) => tracing::warn!(pod = %self.key(), "posting status: {e}"),
        }
    }

    /// Stops the containers (SIGTERM, SIGKILL after the grace period), the pause process and
    /// the network, then confirms the deletion to the API server.
    async fn terminate(&mut self) {
        let grace = self.grace();
        let mut stops = Vec::new();
        for c in &self.rec.containers {
            if let Some(p) = c.process.filter(|p| self.rt.kernel.alive(*p)) {
                let msg = format!("Stopping container {}", c.record.name);
                self.event(EventType::Normal, "Killing", &msg).await;
                stops.push(self.rt.kernel.stop(p, grace));
            }
        }
        futures::future::join_all(stops).await;
        if !self.gone {
            // Report the containers not ready while the pod's address still answers (with
            // resets, its ports being closed), so Services drop it before the network goes
            // and clients are refused rather than left waiting for ARP.
            for c in &mut self.rec.containers {
                c.record.ready = false;
            }
            self.publish().await;
            tokio::time::sleep(UNREADY_LINGER).await;
        }
        remove_sandbox(&self.rt, &self.rec).await;
        if self.gone {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.rt.client.clone(), &self.rec.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.rec.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&self.rec.name, &params).await {
            Ok(_) => tracing::info!(pod = %self.key(), "pod deleted"),
            Err(e) => tracing::warn!(pod = %self.key(), "confirming deletion: {e}"),
        }
    }
}
