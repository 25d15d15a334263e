//! The kubelet's image manager: pull policy, the pull itself, its events and messages, and
//! the image pull back-off (key `<pod uid>_<image>`, 10 s doubling to 5 min).
//!
//! Pulls run in the host's network namespace: the agent lives in its node's namespace,
//! which has no way out, so it runs `kinet image pull` through `nsenter` into the network
//! namespace of its parent, the agent's supervisor, which runs in the host's (PID 1's
//! namespace files may be out of reach, as in containers), with the credentials on its
//! standard input (never on a command line), and reads JSON lines back. The store under `$KINET_HOME/images` is shared with
//! every other agent and `kinet image`; its locks make concurrent pulls safe.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, ContainerImage};
use kinet_oci_store::{PullOptions, Record, Store};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdout, Command};
use tokio::time::Instant;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    IfNotPresent,
    Never,
}

/// The container's policy; unset, it defaults as the API server does: Always for `:latest`
/// or no tag (and no digest), otherwise IfNotPresent.
pub fn policy(c: &Container) -> Policy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => Policy::Always,
        Some("Never") => Policy::Never,
        Some("IfNotPresent") => Policy::IfNotPresent,
        _ => {
            let image = c.image.as_deref().unwrap_or("");
            match kinet_oci_store::normalize(image) {
                Ok(r) if r.digest().is_none() && r.tag() == Some("latest") => Policy::Always,
                _ => Policy::IfNotPresent,
            }
        }
    }
}

/// What to do about a container's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Use the image the node holds.
    Use,
    Pull,
    /// Never and absent: ErrImageNeverPull.
    Refuse,
}

/// The kubelet's decision (`shouldPullImage`): Always pulls without looking.
pub fn action(policy: Policy, present: bool) -> Action {
    match (policy, present) {
        (Policy::Always, _) | (Policy::IfNotPresent, false) => Action::Pull,
        (Policy::Never, false) => Action::Refuse,
        (_, true) => Action::Use,
    }
}

/// The kubelet's event and status messages, word for word.
pub mod messages {
    use std::time::Duration;

    pub fn pulling(image: &str) -> String {
        format!("Pulling image {image:?}")
    }

    pub fn pulled(image: &str, took: Duration, with_waiting: Duration, size: u64) -> String {
        format!(
            "Successfully pulled image {image:?} in {:?} ({:?} including waiting). Image size: {size} bytes.",
            round(took),
            round(with_waiting)
        )
    }

    /// Go prints durations to the millisecond the kubelet rounds them to.
    fn round(d: Duration) -> Duration {
        Duration::from_millis(d.as_millis() as u64)
    }

    pub fn present(image: &str) -> String {
        format!("Container image {image:?} already present on machine")
    }

    pub fn never_pull(image: &str) -> String {
        format!("Container image {image:?} is not present with pull policy of Never")
    }

    pub fn failed(image: &str, error: &str) -> String {
        format!("Failed to pull image {image:?}: {error}")
    }

    pub fn back_off(image: &str) -> String {
        format!("Back-off pulling image {image:?}")
    }

    pub fn invalid(image: &str, error: &str) -> String {
        format!("Failed to apply default image tag {image:?}: {error}")
    }
}

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The kubelet's flowcontrol back-off for image pulls, with each key's last failure.
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    delay: Duration,
    at: Instant,
    error: String,
}

impl Backoff {
    pub fn key(pod_uid: &str, image: &str) -> String {
        format!("{pod_uid}_{image}")
    }

    /// Until when `key` backs off at `now`, and the failure it backs off from.
    pub fn until(&self, key: &str, now: Instant) -> Option<(Instant, &str)> {
        let e = self.entries.get(key)?;
        let until = e.at + e.delay;
        (now < until).then_some((until, e.error.as_str()))
    }

    /// A failed pull: the next back-off is 10 s, then twice the last, at most 5 min.
    pub fn failed(&mut self, key: &str, now: Instant, error: String) -> Duration {
        let delay = match self.entries.get(key) {
            Some(e) => (e.delay * 2).min(BACKOFF_MAX),
            None => BACKOFF_BASE,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                at: now,
                error,
            },
        );
        delay
    }

    pub fn succeeded(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// One line `kinet image pull --progress json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PullLine {
    Progress(kinet_oci_store::Progress),
    Pulled(Record),
}

/// A finished pull, timed as the kubelet's Pulled event reports it.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub record: Record,
    /// From the moment the pull held the store's locks (its first progress line) to its end.
    pub took: Duration,
    /// From the request on: with the pull's start and any wait for another pull of the
    /// same image (which holds that image's lock).
    pub with_waiting: Duration,
}

/// Pulls `image` with `kinet image pull` in the host's network namespace; `Err` is the
/// message the pull failed with.
pub async fn pull(exe: &Path, image: &str, opts: &PullOptions) -> Result<Pulled, String> {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!(
        "--net=/proc/{}/ns/net",
        std::os::unix::process::parent_id()
    ))
    .arg(exe)
    .args([
        "image",
        "pull",
        "--progress",
        "json",
        "--options-stdin",
        image,
    ]);
    run_pull(cmd, image, opts).await
}

/// Runs a pull command: `opts` on its standard input, its JSON lines read back. Standard
/// error is read at the same time: a child blocked on a full stderr pipe would never close
/// its standard output.
async fn run_pull(mut cmd: Command, image: &str, opts: &PullOptions) -> Result<Pulled, String> {
    let requested = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the pull: {e}"))?;
    let request = serde_json::to_vec(opts).expect("options serialize");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(&request)
        .await
        .map_err(|e| format!("starting the pull: {e}"))?;
    drop(stdin);
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = async {
        let mut text = Vec::new();
        if let Err(e) = stderr.read_to_end(&mut text).await {
            tracing::warn!(image, "reading the pull's errors: {e}");
        }
        text
    };
    let (pulled, errors) = tokio::join!(read_pulled(stdout, image), errors);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for the pull: {e}"))?;
    match pulled {
        Some((record, locked, done)) if status.success() => Ok(Pulled {
            record,
            took: done - locked.unwrap_or(requested),
            with_waiting: done - requested,
        }),
        _ => Err(failure(&String::from_utf8_lossy(&errors))),
    }
}

/// The record of the pull's last `Pulled` line, when its first progress line came and when
/// it ended, logging its progress on the way.
async fn read_pulled(
    stdout: ChildStdout,
    image: &str,
) -> Option<(Record, Option<Instant>, Instant)> {
    let mut lines = BufReader::new(stdout).lines();
    let (mut pulled, mut locked) = (None, None);
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str(&line) {
            Ok(PullLine::Pulled(record)) => pulled = Some((record, Instant::now())),
            Ok(PullLine::Progress(p)) => {
                locked.get_or_insert_with(Instant::now);
                tracing::debug!(
                    image,
                    done = p.done,
                    total = p.total,
                    layers_done = p.layers_done,
                    layers = p.layers,
                    "pulling"
                )
            }
            Err(_) => tracing::warn!(image, line, "unexpected output of kinet image pull"),
        }
    }
    pulled.map(|(record, done)| (record, locked, done))
}

/// The error a failed `kinet image pull` printed: from its last `Error: ` line on (log
/// lines before it are not part of the message).
fn failure(stderr: &str) -> String {
    let from = stderr.rfind("\nError: ").map_or(0, |i| i + 1);
    let err = stderr[from..].trim();
    err.strip_prefix("Error: ").unwrap_or(err).to_string()
}

/// Node `status.images`: what the node holds, largest first, at most 50, as the kubelet
/// reports them (digest references, then names).
pub fn node_images(records: &[Record]) -> Vec<ContainerImage> {
    let mut by_id: Vec<(String, Vec<String>, u64)> = Vec::new();
    for r in records {
        match by_id.iter_mut().find(|(id, _, _)| *id == r.config) {
            Some((_, names, _)) => names.push(r.name.clone()),
            None => by_id.push((
                r.config.clone(),
                vec![r.digest_reference(), r.name.clone()],
                r.size(),
            )),
        }
    }
    by_id.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    by_id.truncate(50);
    by_id
        .into_iter()
        .map(|(_, mut names, size)| {
            names.dedup();
            ContainerImage {
                names: Some(names),
                size_bytes: i64::try_from(size).ok(),
            }
        })
        .collect()
}

/// A directory mtime this close to now may be followed by another change within the same
/// timestamp tick, so a listing made then is not trusted to be the last one.
const SETTLE: Duration = Duration::from_secs(1);

/// The node's images for `status.images`, listed again only when the store's names change
/// (a pull, a load or a removal, by any agent or `kinet image`), never on the runtime's
/// threads.
#[derive(Debug, Default)]
pub struct NodeImages {
    /// The names directory's mtime the listing is current for; `None`: list again.
    current_for: Option<SystemTime>,
    images: Vec<ContainerImage>,
}

impl NodeImages {
    /// The images of `store`, from the last listing if nothing changed since.
    pub async fn get(&mut self, store: &Store) -> Vec<ContainerImage> {
        let (store, current_for) = (store.clone(), self.current_for);
        let listed = tokio::task::spawn_blocking(move || -> Result<_, kinet_oci_store::Error> {
            let changed = store.names_changed()?;
            if current_for == Some(changed) {
                return Ok(None);
            }
            Ok(Some((changed, node_images(&store.list()?))))
        })
        .await;
        match listed {
            Ok(Ok(Some((changed, images)))) => {
                self.current_for = settled(changed, SystemTime::now());
                self.images = images;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("listing the node's images: {e}"),
            Err(e) => tracing::warn!("listing the node's images: {e}"),
        }
        self.images.clone()
    }
}

/// `changed` if it is old enough that no later change can share its timestamp.
fn settled(changed: SystemTime, now: SystemTime) -> Option<SystemTime> {
    now.duration_since(changed)
        .is_ok_and(|age| age >= SETTLE)
        .then_some(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Container::default()
        }
    }

    #[test]
    fn policy_defaults_by_tag() {
        let digest = format!("nginx@sha256:{}", "a".repeat(64));
        let cases = [
            ("nginx", None, Policy::Always),
            ("nginx:latest", None, Policy::Always),
            ("127.0.0.1:5000/demo", None, Policy::Always),
            ("nginx:1.7.9", None, Policy::IfNotPresent),
            (digest.as_str(), None, Policy::IfNotPresent),
            ("nginx", Some("Never"), Policy::Never),
            ("nginx:1.7.9", Some("Always"), Policy::Always),
            ("nginx", Some("IfNotPresent"), Policy::IfNotPresent),
        ];
        for (image, p, want) in cases {
            assert_eq!(policy(&container(image, p)), want, "{image} {p:?}");
        }
    }

    #[test]
    fn pull_decisions() {
        assert_eq!(action(Policy::Always, true), Action::Pull);
        assert_eq!(action(Policy::IfNotPresent, true), Action::Use);
        assert_eq!(action(Policy::IfNotPresent, false), Action::Pull);
        assert_eq!(action(Policy::Never, true), Action::Use);
        assert_eq!(action(Policy::Never, false), Action::Refuse);
    }

    #[test]
    fn kubelet_messages() {
        assert_eq!(
            messages::pulled("demo:1", Duration::from_millis(1234), Duration::from_millis(1500), 42),
            "Successfully pulled image \"demo:1\" in 1.234s (1.5s including waiting). Image size: 42 bytes."
        );
        assert_eq!(
            messages::never_pull("x:1"),
            "Container image \"x:1\" is not present with pull policy of Never"
        );
        assert_eq!(messages::back_off("x"), "Back-off pulling image \"x\"");
    }

    /// A shell standing in for `kinet image pull`: it reads the options, writes 100 kB of
    /// log lines to stderr (more than a pipe holds), then runs `then`.
    fn noisy_pull(then: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("cat >/dev/null; yes warning | head -c 100000 >&2; {then}"),
        ]);
        cmd
    }

    /// Fails the test instead of hanging it when the pull never finishes.
    async fn finished<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("the pull never finished")
    }

    /// The record a stand-in pull prints.
    fn demo_record() -> Record {
        Record {
            name: "docker.io/library/demo:1".into(),
            digest: format!("sha256:{}", "d".repeat(64)),
            manifest: String::new(),
            config: String::new(),
            layers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_pull_with_a_full_stderr_pipe_still_finishes() {
        let record = demo_record();
        let line = serde_json::to_string(&PullLine::Pulled(record.clone())).unwrap();
        let ok = noisy_pull(&format!("echo '{line}'"));
        let got = finished(run_pull(ok, "demo:1", &PullOptions::default())).await;
        assert_eq!(got.unwrap().record.name, record.name);

        let failing = noisy_pull("echo 'Error: manifest unknown' >&2; exit 1");
        let got = finished(run_pull(failing, "demo:1", &PullOptions::default())).await;
        assert_eq!(got.unwrap_err(), "manifest unknown");
    }

    #[tokio::test]
    async fn the_wait_for_the_store_s_lock_counts_as_waiting_only() {
        let locked = serde_json::to_string(&PullLine::Progress(Default::default())).unwrap();
        let line = serde_json::to_string(&PullLine::Pulled(demo_record())).unwrap();
        // Half a second waiting for the lock, then the pull itself.
        let script = format!("cat >/dev/null; sleep 0.5; echo '{locked}'; echo '{line}'");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let got = finished(run_pull(cmd, "demo:1", &PullOptions::default()))
            .await
            .unwrap();
        assert!(
            got.with_waiting >= got.took + Duration::from_millis(500),
            "{got:?}"
        );
    }

    #[test]
    fn the_failure_is_the_last_error_line_on() {
        assert_eq!(failure("Error: no such host\n"), "no such host");
        assert_eq!(
            failure("WARN retrying\nError: denied\n\nCaused by:\n    401\n"),
            "denied\n\nCaused by:\n    401"
        );
        assert_eq!(failure("killed\n"), "killed");
    }

    #[test]
    fn back_off_doubles_to_five_minutes() {
        let mut b = Backoff::default();
        let key = Backoff::key("uid", "x");
        let t0 = Instant::now();
        assert_eq!(b.until(&key, t0), None);
        let delays: Vec<u64> = (0..7)
            .map(|n| b.failed(&key, t0, format!("failure {n}")).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.until(&key, t0), Some((t0 + BACKOFF_MAX, "failure 6")));
        assert_eq!(b.until(&key, t0 + BACKOFF_MAX), None);
        b.succeeded(&key);
        assert_eq!(b.failed(&key, t0, String::new()).as_secs(), 10);
    }

    #[test]
    fn a_listing_is_trusted_once_the_store_has_settled() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(settled(t, t + SETTLE), Some(t));
        assert_eq!(settled(t, t + Duration::from_millis(10)), None);
        // A clock that went back: list again.
        assert_eq!(settled(t, t - Duration::from_secs(5)), None);
    }

    #[tokio::test]
    async fn node_images_follow_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut cache = NodeImages::default();
        assert!(cache.get(&store).await.is_empty());
        let layer = kinet_testkit::oci::LayerBuilder::default()
            .file("hello", b"hi", 0o644)
            .build();
        let archive = kinet_testkit::oci::Image::new(vec![layer], serde_json::json!({}))
            .docker_archive_tar("demo:1");
        let tar = dir.path().join("demo.tar");
        std::fs::write(&tar, archive).unwrap();
        kinet_oci_store::import::import(&store, &tar).unwrap();
        let names = |images: Vec<ContainerImage>| -> Vec<String> {
            images.into_iter().flat_map(|i| i.names.unwrap()).collect()
        };
        assert!(names(cache.get(&store).await).contains(&"docker.io/library/demo:1".to_string()));
        store.remove("demo:1").unwrap();
        assert!(cache.get(&store).await.is_empty());
    }

    #[test]
    fn node_images_largest_first() {
        let record = |name: &str, config: char, size: u64| Record {
            name: name.into(),
            digest: format!("sha256:{}", "d".repeat(64)),
            manifest: String::new(),
            config: format!("sha256:{}", config.to_string().repeat(64)),
            layers: vec![kinet_oci_store::Layer {
                digest: String::new(),
                size,
                media_type: String::new(),
            }],
        };
        let images = node_images(&[
            record("docker.io/library/small:1", 'a', 10),
            record("docker.io/library/big:1", 'b', 99),
            record("docker.io/library/big:latest", 'b', 99),
        ]);
        let names: Vec<Vec<String>> = images.iter().map(|i| i.names.clone().unwrap()).collect();
        let d = "d".repeat(64);
        assert_eq!(
            names,
            [
                vec![
                    format!("docker.io/library/big@sha256:{d}"),
                    "docker.io/library/big:1".into(),
                    "docker.io/library/big:latest".into()
                ],
                vec![
                    format!("docker.io/library/small@sha256:{d}"),
                    "docker.io/library/small:1".into()
                ],
            ]
        );
        assert_eq!(images[0].size_bytes, Some(99));
    }
}
