//! Starting, restarting and accounting for containers: image and argv, environment, the
//! kubelet's crash-loop back-off, exits.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::jiff::Timestamp;
use kinet_controllers::events::EventType;
use tokio::time::Instant;

use super::probing::trackers;
use super::{Event, Kind, Worker, RETRY};
use crate::pods::env::{self, Objects, Sources};
use crate::pods::files;
use crate::pods::kernel::Started;
use crate::pods::process::{self, Launch};
use crate::pods::runspec::{self, Inputs};
use crate::pods::sandbox::Files;
use crate::pods::status::{Exit, State};
use kinet_oci_store::{Lease, Resolved};
use kinet_runtime::config::{self, ImageDefaults};
use kinet_runtime::{standin, ImageRoot};

/// Where a container's image comes from.
enum Source {
    /// A name kinet serves itself.
    Builtin(&'static kinet_images::Image),
    /// An image of the store, pulled or loaded.
    Pulled(Box<Resolved>),
}

/// The kubelet's crash-loop back-off: 10 s doubling up to 5 min, reset after 10 min of running.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

pub(super) fn backoff_delay(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    BACKOFF_BASE
        .saturating_mul(1 << (n - 1).min(10))
        .min(BACKOFF_MAX)
}

/// What follows a container's exit, as the kubelet decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RestartPlan {
    /// When to start it again (zero: at once); `None`: it stays terminated.
    pub delay: Option<Duration>,
    /// The slot's crash-loop count from now on.
    pub backoff: u32,
}

/// The restart decision for a container that exited with `code` after running `ran_for`
/// (`None`: it never started), its crash-loop count at `backoff`: the pod's `restartPolicy`
/// (default Always; ephemeral containers never restart), then the back-off, which a run
/// of 10 minutes resets.
pub(super) fn restart_plan(
    policy: Option<&str>,
    ephemeral: bool,
    code: i32,
    backoff: u32,
    ran_for: Option<Duration>,
) -> RestartPlan {
    let restart = !ephemeral
        && match policy.unwrap_or("Always") {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
    let backoff = if ran_for.is_some_and(|d| d >= BACKOFF_RESET) {
        0
    } else {
        backoff
    };
    if !restart {
        return RestartPlan {
            delay: None,
            backoff,
        };
    }
    RestartPlan {
        delay: Some(backoff_delay(backoff)),
        backoff: backoff + 1,
    }
}

/// How an instance's end is reported: its exit code, or, for an adopted process whose
/// status no one can read (`code` None), 137 `ContainerStatusUnknown` as the kubelet reports
/// a container it lost track of. `state` is the container's state while it ran.
pub(super) fn exit_of(state: &State, code: Option<i32>, now: Timestamp) -> Exit {
    let (pid, started_at) = match *state {
        State::Running { pid, started_at } => (pid, started_at),
        _ => (0, now),
    };
    match code {
        Some(code) => Exit::new(code, started_at, now, pid),
        None => Exit {
            code: 137,
            reason: "ContainerStatusUnknown".into(),
            started_at,
            finished_at: now,
            pid,
        },
    }
}

impl Worker {
    pub(super) async fn env_sources(
        &self,
        c: &Container,
    ) -> Result<(Vec<Service>, Objects, Objects), String> {
        let ns = &self.rec.namespace;
        let services = self.rt.services_for(ns).await;
        let (cm_names, secret_names) = env::references(c);
        let err = |e: kube::Error| e.to_string();
        let objects = &self.rt.objects;
        let cms: Objects = objects
            .config_maps(ns, &cm_names)
            .await
            .map_err(err)?
            .into_iter()
            .map(|(n, cm)| (n, cm.data.unwrap_or_default()))
            .collect();
        let secrets: Objects = objects
            .secrets(ns, &secret_names)
            .await
            .map_err(err)?
            .into_iter()
            .map(|(n, s)| (n, env::secret_data(&s.data.unwrap_or_default())))
            .collect();
        Ok((services, cms, secrets))
    }

    pub(super) fn set_state(&mut self, idx: usize, state: State) {
        self.rec.containers[idx].record.state = state;
    }

    pub(super) fn waiting(&mut self, idx: usize, reason: &str, message: Option<String>) {
        self.set_state(
            idx,
            State::Waiting {
                reason: reason.into(),
                message,
            },
        );
    }

    /// A container that cannot be created now: the kubelet's `Error: …` event, waiting with
    /// `reason`, another try after [`RETRY`].
    async fn not_created(&mut self, idx: usize, reason: &str, message: String) {
        self.event(EventType::Warning, "Failed", &format!("Error: {message}"))
            .await;
        self.waiting(idx, reason, Some(message));
        self.slots[idx].due = Some(Instant::now() + RETRY);
    }

    pub(super) async fn start_container(&mut self, idx: usize) {
        let spec = self.slots[idx].spec.clone();
        let name = spec.name.clone();
        let image_ref = spec.image.clone().unwrap_or_default();
        self.slots[idx].due = None;
        // Built-in names run kinet-made roots (unless the cluster pulls that name for real);
        // any other image comes from the store.
        let builtin = kinet_images::lookup(&image_ref)
            .filter(|b| self.rt.cfg.registries.serves_builtin(b.name));
        let source = match builtin {
            Some(builtin) => Source::Builtin(builtin),
            None => match self.ensure_image(idx).await {
                Some(pulled) => Source::Pulled(Box::new(pulled)),
                None => return,
            },
        };
        let defaults = match &source {
            Source::Builtin(_) => ImageDefaults::default(),
            Source::Pulled(p) => ImageDefaults::from_oci(&p.config),
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
            Err(e) => return self.config_error(idx, e).await,
        };
        let (hostname, _) = files::hostname(&self.pod, &self.rt.cfg.dns);
        let full = config::env(&defaults.env, &hostname, container_env);
        let expand = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter().flatten().map(|s| env::expand(s, &full)).collect()
        };
        let (command, args) = (expand(&spec.command), expand(&spec.args));
        // restartCount counts new instances, as the kubelet counts containers it creates
        // again, so it does not move while a crashed container waits out its back-off.
        let first = self.slots[idx].instance == 0 && self.rec.containers[idx].record.last.is_none();
        if !first {
            self.rec.containers[idx].record.restarts += 1;
        }
        let restarts = self.rec.containers[idx].record.restarts;
        let log = self.rt.dirs.log(&self.rec.uid, &name, restarts);
        let (argv, root) = match &source {
            Source::Builtin(image) => {
                match self.builtin_launch(idx, image, &command, &args, &log).await {
                    Some(launch) => launch,
                    None => return,
                }
            }
            Source::Pulled(p) => {
                let argv = config::argv(&defaults.entrypoint, &defaults.cmd, &command, &args);
                if argv.is_empty() {
                    let msg = "failed to generate container spec: no command specified";
                    self.not_created(idx, "CreateContainerError", msg.into())
                        .await;
                    return;
                }
                let root = ImageRoot {
                    rootfs: p.rootfs.clone(),
                    host_binds: Vec::new(),
                };
                (argv, root)
            }
        };
        let path = full
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !kinet_runtime::paths::finds_program(&root, path, &argv[0]) {
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
        if let Source::Pulled(p) = &source {
            self.rec.containers[idx].record.image_id = p.image_id.clone();
            // The sandbox process keeps the lease: once it is gone, the image may go. Without
            // it the image could be removed under the running container, so it does not start.
            let lease = Lease {
                holder: format!("{}/{}/{}", self.rt.cfg.cluster, self.rec.uid, name),
                image: p.record.config.clone(),
                pid: pause.pid,
            };
            if let Err(e) = self.rt.store().and_then(|s| s.lease(&lease)) {
                let msg = format!("Error: could not lease image \"{image_ref}\": {e}");
                self.event(EventType::Warning, "Failed", &msg).await;
                self.exited_now(idx, 128, "StartError").await;
                return;
            }
        }
        let launch = match self.launch(idx, root, &defaults, argv, full.clone(), log) {
            Ok(l) => l,
            Err(e) => return self.config_error(idx, e).await,
        };
        if first && matches!(source, Source::Builtin(_)) {
            let msg = format!("Container image \"{image_ref}\" already present on machine");
            self.event(EventType::Normal, "Pulled", &msg).await;
        }
        self.event(
            EventType::Normal,
            "Created",
            &format!("Created container: {name}"),
        )
        .await;
        match self.rt.kernel.start(&launch) {
            Ok(Started {
                process: proc,
                exit,
            }) => {
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
                    let code = exit.await;
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
                // On disk before anything else can fail or wait: an agent killed from here on
                // leaves a record through which `kinet down` still finds the process.
                self.persist();
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

    /// A built-in image's argv and kinet-made root; `None` when the container already
    /// ended (its program's usage error, or no root could be made).
    async fn builtin_launch(
        &mut self,
        idx: usize,
        image: &'static kinet_images::Image,
        command: &[String],
        args: &[String],
        log: &Path,
    ) -> Option<(Vec<String>, ImageRoot)> {
        let (argv, builtin) = match kinet_images::plan(image, command, args) {
            Ok(kinet_images::Plan::Builtin { image, args }) => {
                let mut argv = vec![
                    standin::KINET_PATH.to_string(),
                    "image-run".into(),
                    image.to_string(),
                    "--".into(),
                ];
                argv.extend(args);
                (argv, true)
            }
            Ok(kinet_images::Plan::Exec { argv }) => (argv, false),
            Err(e) => {
                // The real image's program would start and exit with its usage error.
                let _ = std::fs::create_dir_all(log.parent().expect("log dir"));
                let _ = std::fs::write(log, format!("{e}\n"));
                self.exited_now(idx, 1, "Error").await;
                return None;
            }
        };
        let kinet = builtin.then_some(self.rt.cfg.exe.as_path());
        match standin::materialize(&self.rt.cfg.images_dir, kinet) {
            Ok(root) => Some((argv, root)),
            Err(e) => {
                let msg = format!("Error: making the image's root filesystem: {e}");
                self.event(EventType::Warning, "Failed", &msg).await;
                self.exited_now(idx, 128, "StartError").await;
                None
            }
        }
    }

    /// A container that cannot be configured (yet): CreateContainerConfigError, tried again
    /// shortly.
    async fn config_error(&mut self, idx: usize, e: String) {
        self.not_created(idx, "CreateContainerConfigError", e).await;
    }

    /// The runtime's spec of the instance about to start, with its cgroup made.
    fn launch(
        &mut self,
        idx: usize,
        image: ImageRoot,
        defaults: &ImageDefaults,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        log: std::path::PathBuf,
    ) -> Result<Launch, String> {
        let sandbox_pid = self.rec.pause.ok_or("the pod's sandbox is gone")?.pid;
        let mut spec = self.slots[idx].spec.clone();
        spec.working_dir = Some(config::cwd(spec.working_dir.as_deref(), defaults));
        let (uid, name) = (self.rec.uid.clone(), spec.name.clone());
        let pod_dir = self.rt.dirs.dir(&uid);
        let files = Files::under(&pod_dir, pod_dir.join("serviceaccount").is_dir());
        let target_pid = self.slots[idx]
            .target
            .as_deref()
            .and_then(|t| process::container_pid(&self.rt.dirs.io(&uid, t)));
        // Volumes first, then the pod's files over them, as the kubelet orders its mounts.
        let volume = |name: &str| self.volumes.get(name).cloned();
        let mut mounts = crate::pods::volumes::container_mounts(&spec, &env, volume)
            .map_err(|e| format!("failed to prepare volume mounts of container {name:?}: {e}"))?;
        mounts.extend(files.mounts());
        let cgroups = self
            .rt
            .kernel
            .limit(
                &self.rt.pod_cgroup(&uid).join(&name),
                runspec::limits(&spec),
            )
            .map_err(|e| format!("creating the container's cgroup: {e}"))?;
        let inputs = Inputs {
            image,
            image_user: defaults.user.clone(),
            argv,
            env,
            sandbox_pid,
            target_pid,
            dir: self.rt.dirs.container(&uid, &name),
            mounts,
            cgroups,
        };
        self.slots[idx].cgroup = true;
        Ok(Launch {
            spec: runspec::container_spec(&self.pod, &spec, inputs)?,
            log,
            io_dir: self.rt.dirs.io(&uid, &name),
            stdin: spec.stdin == Some(true),
            stdin_once: spec.stdin_once == Some(true),
        })
    }

    /// A container that ended before it ran (start errors): recorded as an exit.
    pub(super) async fn exited_now(&mut self, idx: usize, code: i32, reason: &str) {
        let now = Timestamp::now();
        let mut exit = Exit::new(code, now, now, 0);
        exit.reason = reason.into();
        self.slots[idx].started = Some(Instant::now());
        self.after_exit(idx, exit).await;
    }

    pub(super) async fn handle(&mut self, ev: Event) {
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
                c.process = None;
                let mut exit = exit_of(&c.record.state, code, Timestamp::now());
                if std::mem::take(&mut self.slots[idx].cgroup) {
                    let rel = self.rt.pod_cgroup(&self.rec.uid).join(&c.record.name);
                    if self.rt.kernel.oom_killed(&rel) {
                        exit.reason = "OOMKilled".into();
                    }
                    self.rt.kernel.remove_cgroups(&rel);
                }
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

    pub(super) async fn after_exit(&mut self, idx: usize, exit: Exit) {
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref());
        let slot = &mut self.slots[idx];
        let next = restart_plan(
            policy,
            slot.ephemeral,
            exit.code,
            slot.backoff,
            slot.started.map(|s| s.elapsed()),
        );
        slot.probes.clear();
        slot.backoff = next.backoff;
        let c = &mut self.rec.containers[idx];
        c.record.ready = false;
        c.record.started = false;
        let Some(delay) = next.delay else {
            c.record.state = State::Terminated(exit);
            return;
        };
        slot.due = Some(Instant::now() + delay);
        c.record.last = Some(exit);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn exits_are_reported_with_the_instance_that_ran() {
        let started_at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let running = State::Running {
            pid: 42,
            started_at,
        };
        // (code, reported code, reason)
        let cases = [
            (Some(0), 0, "Completed"),
            (Some(1), 1, "Error"),
            (Some(143), 143, "Error"),
            (None, 137, "ContainerStatusUnknown"),
        ];
        for (code, want, reason) in cases {
            let exit = exit_of(&running, code, now);
            assert_eq!(
                (exit.code, exit.reason.as_str(), exit.pid),
                (want, reason, 42),
                "{code:?}"
            );
            assert_eq!((exit.started_at, exit.finished_at), (started_at, now));
        }
        // Not seen running (it ended before its state was recorded): no pid, no run time.
        let waiting = State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let exit = exit_of(&waiting, Some(1), now);
        assert_eq!((exit.pid, exit.started_at, exit.finished_at), (0, now, now));
    }

    #[test]
    fn restart_policy_decides_whether_an_exit_restarts() {
        // (policy, ephemeral, exit code, restarts)
        let cases = [
            (None, false, 0, true),
            (None, false, 1, true),
            (Some("Always"), false, 0, true),
            (Some("OnFailure"), false, 0, false),
            (Some("OnFailure"), false, 137, true),
            (Some("Never"), false, 1, false),
            (Some("Never"), false, 0, false),
            (None, true, 1, false),
            (Some("OnFailure"), true, 1, false),
        ];
        for (policy, ephemeral, code, restarts) in cases {
            let next = restart_plan(policy, ephemeral, code, 0, Some(SEC));
            assert_eq!(
                next.delay.is_some(),
                restarts,
                "{policy:?} ephemeral={ephemeral} code={code}"
            );
        }
    }

    #[test]
    fn crash_loops_back_off_and_a_long_run_resets_the_count() {
        let mut backoff = 0;
        let mut delays = Vec::new();
        for _ in 0..4 {
            let next = restart_plan(None, false, 1, backoff, Some(SEC));
            delays.push(next.delay.unwrap().as_secs());
            backoff = next.backoff;
        }
        assert_eq!(delays, [0, 10, 20, 40]);
        // Ten minutes of running forgives the crash loop.
        let next = restart_plan(None, false, 1, backoff, Some(600 * SEC));
        assert_eq!(
            next,
            RestartPlan {
                delay: Some(Duration::ZERO),
                backoff: 1
            }
        );
        let next = restart_plan(None, false, 1, backoff, Some(599 * SEC));
        assert_eq!(next.delay, Some(80 * SEC));
        // A start error (it never ran) keeps counting.
        assert_eq!(
            restart_plan(None, false, 128, 2, None).delay,
            Some(20 * SEC)
        );
    }

    #[test]
    fn a_container_that_stays_terminated_keeps_no_pending_restart() {
        let next = restart_plan(Some("Never"), false, 1, 3, Some(SEC));
        assert_eq!(
            next,
            RestartPlan {
                delay: None,
                backoff: 3
            }
        );
    }
}
