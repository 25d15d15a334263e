//! One pod's worker: sets up the sandbox, starts and restarts containers, runs probes, posts
//! the status, and on deletion stops everything in order (containers with their grace
//! period, then the pause process, then the network) before confirming the deletion.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kinet_controllers::events::{object_ref, EventType};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::env::{self, Objects, Sources};
use super::files;
use super::probe::{self, Tracker};
use super::process::{self, Launch};
use super::record::{ContainerRecord, PodRecord};
use super::sandbox::{self, Files};
use super::status::{self, Exit, Record, State};
use super::{ContainerView, PodView, Runtime};

/// Retry delay for a sandbox or container that could not be set up.
const RETRY: Duration = Duration::from_secs(2);
/// The kubelet's crash-loop back-off: 10 s doubling up to 5 min, reset after 10 min of running.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

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
    instance: u64,
    due: Option<Instant>,
    backoff: u32,
    started: Option<Instant>,
    env: Vec<(String, String)>,
    probes: Vec<(Kind, Tracker)>,
    image_failures: u32,
}

struct Worker {
    rt: Arc<Runtime>,
    pod: Pod,
    gone: bool,
    rec: PodRecord,
    saved: Option<PodRecord>,
    sandbox_ready: bool,
    sandbox_due: Instant,
    start_time: Timestamp,
    slots: Vec<Slot>,
    tx: mpsc::UnboundedSender<Event>,
    last_status: Option<serde_json::Value>,
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
    let mut w = Worker::new(rt.clone(), pod, adopt, tx);
    w.adopt();
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
                    Some(p) => w.pod = p,
                    None => w.gone = true,
                },
                Err(_) => w.gone = true,
            },
            Some(ev) = events.recv() => w.handle(ev).await,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    rt.worker_done(&uid);
}

/// Removes what a previous agent left for a pod that no longer exists.
pub(super) async fn clean_orphan(rt: Arc<Runtime>, rec: PodRecord) {
    tracing::info!(pod = %format!("{}/{}", rec.namespace, rec.name), "removing the sandbox of a pod that is gone");
    for c in &rec.containers {
        if let Some(p) = c.process {
            process::stop(p, Duration::from_secs(2)).await;
        }
    }
    remove_sandbox(&rt, &rec).await;
}

async fn remove_sandbox(rt: &Runtime, rec: &PodRecord) {
    if let Some(p) = rec.pause {
        process::stop(p, Duration::from_secs(1)).await;
    }
    if !rec.netns.is_empty() {
        if let Err(e) = sandbox::remove_network(&rt.node_ns, &rec.netns, &rec.host_veth).await {
            tracing::warn!(pod = %rec.name, "removing the pod network: {e:#}");
        }
    }
    rt.release_ip(&rec.uid);
    rt.dirs.remove(&rec.uid);
    rt.set_view(&rec.namespace, &rec.name, None);
}

fn backoff_delay(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    BACKOFF_BASE
        .saturating_mul(1 << (n - 1).min(10))
        .min(BACKOFF_MAX)
}

impl Worker {
    fn new(
        rt: Arc<Runtime>,
        pod: Pod,
        adopt: Option<PodRecord>,
        tx: mpsc::UnboundedSender<Event>,
    ) -> Worker {
        let spec_containers = pod.spec.clone().map(|s| s.containers).unwrap_or_default();
        let uid = pod.uid().unwrap_or_default();
        let mut rec = adopt.clone().unwrap_or_else(|| PodRecord {
            uid: uid.clone(),
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            netns: String::new(),
            ip: std::net::Ipv4Addr::UNSPECIFIED,
            host_veth: String::new(),
            pause: None,
            containers: Vec::new(),
        });
        // Keep what was recorded for containers that are still in the spec.
        rec.containers = spec_containers
            .iter()
            .map(|c| {
                rec.containers
                    .iter()
                    .find(|r| r.record.name == c.name)
                    .cloned()
                    .unwrap_or_else(|| ContainerRecord {
                        record: Record::waiting(
                            &c.name,
                            c.image.as_deref().unwrap_or(""),
                            "ContainerCreating",
                        ),
                        process: None,
                    })
            })
            .collect();
        let slots = spec_containers
            .into_iter()
            .map(|spec| Slot {
                spec,
                instance: 0,
                due: Some(Instant::now()),
                backoff: 0,
                started: None,
                env: Vec::new(),
                probes: Vec::new(),
                image_failures: 0,
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
            start_time,
            slots,
            tx,
            last_status: None,
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.rec.namespace, self.rec.name)
    }

    /// Takes over a sandbox and containers that a previous agent started, if still alive.
    fn adopt(&mut self) {
        let Some(pause) = self.rec.pause else { return };
        if !pause.alive() {
            return;
        }
        self.sandbox_ready = true;
        tracing::info!(pod = %self.key(), pid = pause.pid, "adopted the running sandbox");
        for idx in 0..self.slots.len() {
            let cr = &self.rec.containers[idx];
            let (Some(p), State::Running { .. }) = (cr.process, &cr.record.state) else {
                continue;
            };
            if !p.alive() {
                continue;
            }
            let slot = &mut self.slots[idx];
            slot.instance += 1;
            slot.due = None;
            slot.started = Some(Instant::now());
            slot.probes = trackers(&slot.spec, Instant::now());
            let (tx, instance) = (self.tx.clone(), slot.instance);
            tokio::spawn(async move {
                process::wait_adopted(p).await;
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
            if let Err(e) = self.setup_sandbox().await {
                let msg = format!("Failed to create pod sandbox: {e:#}");
                tracing::warn!(pod = %self.key(), "{msg}");
                self.event(EventType::Warning, "FailedCreatePodSandBox", &msg)
                    .await;
                self.sandbox_due = Instant::now() + RETRY;
            }
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
        let mut wake = if self.sandbox_ready {
            far
        } else {
            self.sandbox_due
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

    async fn setup_sandbox(&mut self) -> anyhow::Result<()> {
        let rt = self.rt.clone();
        if let Some(old) = self.rec.pause.take() {
            // A previous sandbox died: its containers go with it.
            for c in &mut self.rec.containers {
                if let Some(p) = c.process.take() {
                    process::stop(p, Duration::ZERO).await;
                }
            }
            process::stop(old, Duration::ZERO).await;
        }
        let uid = self.rec.uid.clone();
        let ip = rt.allocate_ip(&uid)?;
        let netns = sandbox::netns_name(&rt.cfg.cluster, &uid);
        self.rec.ip = ip;
        self.rec.netns = netns.clone();
        self.rec.host_veth = kinet_cni::host_veth_name(&netns);
        rt.dirs.save(&self.rec)?;
        sandbox::network(&rt.node_ns, &rt.net, &netns, ip).await?;

        let dir = rt.dirs.dir(&uid);
        let sa = self.service_account_files(&dir).await?;
        let files = Files::under(&dir, sa);
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&files.hosts, files::hosts_file(&self.pod, ip, &rt.cfg.dns))?;
        std::fs::write(
            &files.resolv,
            files::resolv_conf(&self.pod, &rt.cfg.dns, &host_resolv),
        )?;
        let (hostname, _) = files::hostname(&self.pod, &rt.cfg.dns);
        let pause = sandbox::start_pause(
            &rt.cfg.exe,
            &netns,
            &hostname,
            &files,
            &dir.join("pause.log"),
        )
        .await?;
        self.rec.pause = Some(pause);
        rt.dirs.save(&self.rec)?;
        self.sandbox_ready = true;
        tracing::info!(pod = %self.key(), %ip, pause = pause.pid, "sandbox ready");
        Ok(())
    }

    /// Writes the service-account token, CA and namespace; false when the pod opts out.
    async fn service_account_files(&self, dir: &std::path::Path) -> anyhow::Result<bool> {
        let spec = self.pod.spec.as_ref();
        let ns = self.rec.namespace.clone();
        let sa_name = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let sas: Api<ServiceAccount> = Api::namespaced(self.rt.client.clone(), &ns);
        let sa_opt = sas
            .get_opt(&sa_name)
            .await?
            .and_then(|sa| sa.automount_service_account_token);
        let automount = spec
            .and_then(|s| s.automount_service_account_token)
            .or(sa_opt)
            .unwrap_or(true);
        if !automount {
            return Ok(false);
        }
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3607),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(self.rec.name.clone()),
                    uid: Some(self.rec.uid.clone()),
                }),
            },
            ..TokenRequest::default()
        };
        let token = sas
            .create_token_request(&sa_name, &PostParams::default(), &req)
            .await
            .map_err(|e| anyhow::anyhow!("failed to fetch token for {ns}/{sa_name}: {e}"))?
            .status
            .map(|s| s.token)
            .unwrap_or_default();
        let sa_dir = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa_dir)?;
        std::fs::write(sa_dir.join("token"), token)?;
        std::fs::write(sa_dir.join("ca.crt"), &self.rt.cfg.ca_pem)?;
        std::fs::write(sa_dir.join("namespace"), &ns)?;
        Ok(true)
    }

    async fn env_sources(&self, c: &Container) -> Result<(Vec<Service>, Objects, Objects), String> {
        let client = self.rt.client.clone();
        let ns = self.rec.namespace.clone();
        let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
        let mut services = svcs
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        if ns != "default" {
            let default: Api<Service> = Api::namespaced(client.clone(), "default");
            if let Ok(k) = default.get("kubernetes").await {
                services.push(k);
            }
        }
        let (cm_names, secret_names) = env::references(c);
        let mut cms = Objects::new();
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        for n in cm_names {
            if let Some(cm) = cm_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                cms.insert(n, cm.data.unwrap_or_default());
            }
        }
        let mut secrets = Objects::new();
        let s_api: Api<Secret> = Api::namespaced(client, &ns);
        for n in secret_names {
            if let Some(s) = s_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                secrets.insert(n, env::secret_data(&s.data.unwrap_or_default()));
            }
        }
        Ok((services, cms, secrets))
    }

    fn set_state(&mut self, idx: usize, state: State) {
        self.rec.containers[idx].record.state = state;
    }

    fn waiting(&mut self, idx: usize, reason: &str, message: Option<String>) {
        self.set_state(
            idx,
            State::Waiting {
                reason: reason.into(),
                message,
            },
        );
    }

    async fn start_container(&mut self, idx: usize) {
        let spec = self.slots[idx].spec.clone();
        let name = spec.name.clone();
        let image_ref = spec.image.clone().unwrap_or_default();
        self.slots[idx].due = None;
        let Some(image) = kinet_images::lookup(&image_ref) else {
            let failures = self.slots[idx].image_failures;
            self.slots[idx].image_failures += 1;
            self.slots[idx].due = Some(Instant::now() + backoff_delay(failures + 1));
            if failures == 0 {
                let msg = format!(
                    "Failed to pull image \"{}\": kinet runs only its built-in images ({})",
                    image_ref,
                    kinet_images::known_names()
                );
                self.waiting(idx, "ErrImagePull", Some(msg.clone()));
                self.event(EventType::Warning, "Failed", &msg).await;
            } else {
                let msg = format!("Back-off pulling image \"{image_ref}\"");
                self.waiting(idx, "ImagePullBackOff", Some(msg.clone()));
                self.event(EventType::Normal, "BackOff", &msg).await;
            }
            return;
        };
        let (services, cms, secrets) = match self.env_sources(&spec).await {
            Ok(s) => s,
            Err(e) => {
                self.waiting(idx, "CreateContainerConfigError", Some(e));
                self.slots[idx].due = Some(Instant::now() + RETRY);
                return;
            }
        };
        let src = Sources {
            services: &services,
            config_maps: &cms,
            secrets: &secrets,
            pod_ip: self.rec.ip.to_string(),
            host_ip: self.rt.cfg.host_ip.to_string(),
        };
        let container_env = match env::container_env(&self.pod, &spec, &src) {
            Ok(e) => e,
            Err(e) => {
                self.event(EventType::Warning, "Failed", &format!("Error: {e}"))
                    .await;
                self.waiting(idx, "CreateContainerConfigError", Some(e));
                self.slots[idx].due = Some(Instant::now() + RETRY);
                return;
            }
        };
        let (hostname, _) = files::hostname(&self.pod, &self.rt.cfg.dns);
        let mut full = vec![
            ("PATH".to_string(), process::DEFAULT_PATH.to_string()),
            ("HOSTNAME".to_string(), hostname),
        ];
        for (k, v) in container_env {
            match full.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = v,
                None => full.push((k, v)),
            }
        }
        if !full.iter().any(|(k, _)| k == "HOME") {
            full.push(("HOME".into(), "/root".into()));
        }
        let expand = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter().flatten().map(|s| env::expand(s, &full)).collect()
        };
        let (command, args) = (expand(&spec.command), expand(&spec.args));
        let restarts = self.rec.containers[idx].record.restarts;
        let log = self.rt.dirs.log(&self.rec.uid, &name, restarts);
        let argv = match kinet_images::plan(image, &command, &args) {
            Ok(kinet_images::Plan::Builtin { image, args }) => {
                let mut argv = vec![
                    self.rt.cfg.exe.display().to_string(),
                    "image-run".into(),
                    image.to_string(),
                    "--".into(),
                ];
                argv.extend(args);
                argv
            }
            Ok(kinet_images::Plan::Exec { argv }) => argv,
            Err(e) => {
                // The real image's program would start and exit with its usage error.
                let _ = std::fs::create_dir_all(log.parent().expect("log dir"));
                let _ = std::fs::write(&log, format!("{e}\n"));
                self.exited_now(idx, 1, "Error").await;
                return;
            }
        };
        if process::resolve(&argv[0]).is_none() {
            let msg = format!(
                "failed to create containerd task: exec: \"{}\": executable file not found in $PATH",
                argv[0]
            );
            self.event(EventType::Warning, "Failed", &format!("Error: {msg}"))
                .await;
            self.exited_now(idx, 128, "StartError").await;
            return;
        }
        let Some(pause) = self.rec.pause else { return };
        let launch = Launch {
            argv,
            env: full.clone(),
            working_dir: spec.working_dir.clone(),
            log,
        };
        if self.slots[idx].instance == 0 && restarts == 0 {
            let msg = format!("Container image \"{image_ref}\" already present on machine");
            self.event(EventType::Normal, "Pulled", &msg).await;
        }
        self.event(
            EventType::Normal,
            "Created",
            &format!("Created container: {name}"),
        )
        .await;
        match process::spawn(pause.pid, &launch) {
            Ok((mut child, proc)) => {
                let now = Instant::now();
                let slot = &mut self.slots[idx];
                slot.instance += 1;
                slot.started = Some(now);
                slot.env = full;
                slot.probes = trackers(&slot.spec, now);
                let ready = !slot.probes.iter().any(|(k, _)| *k == Kind::Readiness);
                let started = !slot.probes.iter().any(|(k, _)| *k == Kind::Startup);
                let (tx, instance) = (self.tx.clone(), slot.instance);
                tokio::spawn(async move {
                    let code = child.wait().await.ok().map(process::exit_code);
                    let _ = tx.send(Event::Exited {
                        idx,
                        instance,
                        code,
                    });
                });
                let c = &mut self.rec.containers[idx];
                c.process = Some(proc);
                c.record.ready = ready;
                c.record.started = started;
                c.record.state = State::Running {
                    pid: proc.pid,
                    started_at: Timestamp::now(),
                };
                self.event(
                    EventType::Normal,
                    "Started",
                    &format!("Started container {name}"),
                )
                .await;
            }
            Err(e) => {
                let msg = format!("Error: failed to start container {name:?}: {e}");
                self.event(EventType::Warning, "Failed", &msg).await;
                self.exited_now(idx, 128, "StartError").await;
            }
        }
    }

    /// A container that ended before it ran (start errors): recorded as an exit.
    async fn exited_now(&mut self, idx: usize, code: i32, reason: &str) {
        let now = Timestamp::now();
        let mut exit = Exit::new(code, now, now, 0);
        exit.reason = reason.into();
        self.slots[idx].started = Some(Instant::now());
        self.after_exit(idx, exit).await;
    }

    async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Exited {
                idx,
                instance,
                code,
            } => {
                if self.slots[idx].instance != instance {
                    return;
                }
                let c = &mut self.rec.containers[idx];
                let (pid, started_at) = match c.record.state {
                    State::Running { pid, started_at } => (pid, started_at),
                    _ => (0, Timestamp::now()),
                };
                c.process = None;
                let exit = match code {
                    Some(code) => Exit::new(code, started_at, Timestamp::now(), pid),
                    None => Exit {
                        code: 137,
                        reason: "ContainerStatusUnknown".into(),
                        started_at,
                        finished_at: Timestamp::now(),
                        pid,
                    },
                };
                self.after_exit(idx, exit).await;
            }
            Event::Probe {
                idx,
                instance,
                kind,
                result,
            } => {
                if self.slots[idx].instance != instance {
                    return;
                }
                self.probe_result(idx, kind, result).await;
            }
        }
    }

    async fn after_exit(&mut self, idx: usize, exit: Exit) {
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => exit.code != 0,
            _ => true,
        };
        let slot = &mut self.slots[idx];
        slot.probes.clear();
        if slot.started.is_some_and(|s| s.elapsed() >= BACKOFF_RESET) {
            slot.backoff = 0;
        }
        let c = &mut self.rec.containers[idx];
        c.record.ready = false;
        c.record.started = false;
        if !restart {
            c.record.state = State::Terminated(exit);
            return;
        }
        let delay = backoff_delay(slot.backoff);
        slot.backoff += 1;
        slot.due = Some(Instant::now() + delay);
        c.record.last = Some(exit);
        c.record.restarts += 1;
        let name = c.record.name.clone();
        if delay.is_zero() {
            c.record.state = State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
        } else {
            let (pod, ns, uid) = (&self.rec.name, &self.rec.namespace, &self.rec.uid);
            c.record.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})",
                    delay.as_secs()
                )),
            };
            let msg =
                format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})");
            self.event(EventType::Warning, "BackOff", &msg).await;
        }
    }

    fn launch_probes(&mut self) {
        let now = Instant::now();
        let pause = self.rec.pause.map(|p| p.pid).unwrap_or(0);
        let ip = self.rec.ip;
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            if !matches!(self.rec.containers[idx].record.state, State::Running { .. }) {
                continue;
            }
            let started = self.rec.containers[idx].record.started;
            for (kind, t) in slot.probes.iter_mut() {
                let gated = (*kind == Kind::Startup) == started;
                if t.busy || t.next > now || gated {
                    continue;
                }
                t.busy = true;
                let probe = match kind {
                    Kind::Startup => slot.spec.startup_probe.clone(),
                    Kind::Readiness => slot.spec.readiness_probe.clone(),
                    Kind::Liveness => slot.spec.liveness_probe.clone(),
                };
                let Some(probe) = probe else { continue };
                let (tx, c, kind, instance, timeout) = (
                    self.tx.clone(),
                    slot.spec.clone(),
                    *kind,
                    slot.instance,
                    t.timing.timeout,
                );
                tokio::spawn(async move {
                    let result = probe::attempt(&probe, &c, ip, pause, timeout).await;
                    let _ = tx.send(Event::Probe {
                        idx,
                        instance,
                        kind,
                        result,
                    });
                });
            }
        }
    }

    async fn probe_result(&mut self, idx: usize, kind: Kind, result: Result<(), String>) {
        let now = Instant::now();
        if let Err(msg) = &result {
            let text = format!("{} probe failed: {msg}", kind.name());
            self.event(EventType::Warning, "Unhealthy", &text).await;
        }
        let Some((_, t)) = self.slots[idx].probes.iter_mut().find(|(k, _)| *k == kind) else {
            return;
        };
        let Some(verdict) = t.record(result.is_ok(), now) else {
            return;
        };
        let name = self.slots[idx].spec.name.clone();
        match (kind, verdict) {
            (Kind::Readiness, v) => self.rec.containers[idx].record.ready = v,
            (Kind::Startup, true) => {
                self.rec.containers[idx].record.started = true;
                for (k, t) in self.slots[idx].probes.iter_mut() {
                    if *k != Kind::Startup {
                        t.next = now + t.timing.initial_delay;
                    }
                }
            }
            (Kind::Liveness, true) => {}
            (Kind::Startup | Kind::Liveness, false) => {
                let what = kind.name().to_lowercase();
                let msg = format!("Container {name} failed {what} probe, will be restarted");
                self.event(EventType::Normal, "Killing", &msg).await;
                if let Some(p) = self.rec.containers[idx].process {
                    tokio::spawn(process::stop(p, self.grace()));
                }
            }
        }
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

    /// Saves the record, refreshes the streaming view and posts the status when changed.
    async fn publish(&mut self) {
        if self.saved.as_ref() != Some(&self.rec) && !self.rec.netns.is_empty() {
            match self.rt.dirs.save(&self.rec) {
                Ok(()) => self.saved = Some(self.rec.clone()),
                Err(e) => tracing::warn!(pod = %self.key(), "saving the pod record: {e}"),
            }
        }
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
                    working_dir: s.spec.working_dir.clone(),
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
        let records: Vec<Record> = self
            .rec
            .containers
            .iter()
            .map(|c| c.record.clone())
            .collect();
        let st = status::pod_status(&self.pod, &sandbox, &records, Timestamp::now());
        let value = serde_json::to_value(&st).unwrap_or_default();
        if self.last_status.as_ref() == Some(&value) {
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
            if let Some(p) = c.process.filter(|p| p.alive()) {
                let msg = format!("Stopping container {}", c.record.name);
                self.event(EventType::Normal, "Killing", &msg).await;
                stops.push(process::stop(p, grace));
            }
        }
        futures::future::join_all(stops).await;
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

fn trackers(c: &Container, started: Instant) -> Vec<(Kind, Tracker)> {
    [
        (Kind::Startup, &c.startup_probe),
        (Kind::Readiness, &c.readiness_probe),
        (Kind::Liveness, &c.liveness_probe),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.as_ref().map(|p| (k, Tracker::new(p, started))))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
    }
}
