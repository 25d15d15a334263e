//! `kinet bench containers` (root): issue 12's figures, each beside a baseline from the same
//! run.
//!
//! - import: `kinet image load` of an image of about 50 MiB (`kinet_oci_store::import` into a
//!   fresh store: the archive staged and hashed, digests checked, layers applied) against
//!   `tar -x` of the same layers; as a docker-archive (plain layers) and an OCI layout (gzip);
//! - start: one container through the runtime (shim, then its forked child: cgroup, mount
//!   namespace, overlay root, `/proc`, `/dev`, `pivot_root`, credentials, seccomp) against
//!   the same program started as a host process in the pod's namespaces (`nsenter`, as kinet
//!   started containers before the runtime), into the same sandbox;
//! - pods: on a 1-node cluster, pods of a real image from the store started one at a time
//!   (created bound to the node → Running with an IP), beside pods of a built-in image; then
//!   the disk and memory each running pod takes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Pod};
use kinet_agent::pods::process::{self, Launch};
use kinet_agent::pods::runspec::{self, Inputs};
use kinet_agent::pods::sandbox::{self, Files};
use kinet_oci_store::{import::import, Store};
use kinet_runtime::cgroup::{self, Cgroup, Limits};
use kinet_runtime::ImageRoot;
use kinet_testkit::oci::Image;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

use super::cluster::BenchCluster;
use super::pods::running_with_ip;
use super::procs::{disk_bytes, pod_processes, pod_records, pss_kib};
use super::stats::{medians_row, ms, ratio, Samples};
use super::unpack::{tar_x, timed, write_layer};

#[derive(Debug, Clone)]
pub struct Options {
    /// The large image's synthetic layer, uncompressed, in MiB.
    pub mib: usize,
    /// Imports and container starts per variant.
    pub runs: usize,
    /// Pods started one at a time per image on the cluster.
    pub pods: usize,
}

/// The small image the starts use: busybox from the host's static binary.
const SMALL: &str = "bench.local/busybox:1";
const LARGE: &str = "bench.local/large:1";

/// The tarballs and layers the benchmark reads.
struct Tarballs {
    docker: PathBuf,
    oci: PathBuf,
    plain_layers: Vec<PathBuf>,
    gzip_layers: Vec<PathBuf>,
    small: PathBuf,
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<PathBuf> {
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The large image (busybox's layer and the synthetic one) as both tarball formats and as
/// loose layers, and the small busybox image as a docker-archive.
fn build(dir: &Path, mib: usize) -> Result<Tarballs> {
    let busybox = Image::busybox("bench", json!({"Cmd": ["sleep", "3600"]}));
    let synthetic = dir.join("synthetic.tar");
    write_layer(&synthetic, mib << 20)?;
    let layers = vec![busybox.plain_layers[0].clone(), std::fs::read(&synthetic)?];
    std::fs::remove_file(&synthetic)?;
    let large = Image::new(layers, json!({"Cmd": ["sleep", "3600"]}));
    let mut plain_layers = Vec::new();
    let mut gzip_layers = Vec::new();
    for (i, (plain, gzip)) in large.plain_layers.iter().zip(&large.layers).enumerate() {
        plain_layers.push(write(dir.join(format!("layer{i}.tar")), plain)?);
        gzip_layers.push(write(dir.join(format!("layer{i}.tar.gz")), &gzip.bytes)?);
    }
    Ok(Tarballs {
        docker: write(
            dir.join("large-docker.tar"),
            &large.docker_archive_tar(LARGE),
        )?,
        oci: write(dir.join("large-oci.tar"), &large.oci_layout_tar(LARGE))?,
        plain_layers,
        gzip_layers,
        small: write(dir.join("small.tar"), &busybox.docker_archive_tar(SMALL))?,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// `kinet image load` against `tar -x` of the same layers, per format.
fn imports(dir: &Path, files: &Tarballs, runs: usize) -> Result<()> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| mib(m.len()));
    println!(
        "image: {:.1} MiB as a docker-archive, {:.1} MiB as an OCI layout; {runs} runs each, medians",
        size(&files.docker)?,
        size(&files.oci)?
    );
    println!("| tarball | kinet image load (ms) | tar -x of its layers (ms) | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, tarball, layers, flag) in [
        ("docker-archive", &files.docker, &files.plain_layers, "-xf"),
        ("OCI layout (gzip)", &files.oci, &files.gzip_layers, "-xzf"),
    ] {
        let (mut ours, mut theirs) = (Samples::default(), Samples::default());
        for i in 0..runs {
            ours.push(timed(&dir.join(format!("store-{i}")), |d| {
                import(&Store::open(d)?, tarball)?;
                Ok(())
            })?);
            theirs.push(timed(&dir.join(format!("tar-{i}")), |d| {
                layers.iter().try_for_each(|layer| tar_x(flag, layer, d))
            })?);
        }
        println!("{}", medians_row(name, &ours, &theirs));
    }
    Ok(())
}

/// Container starts through the runtime and as host processes, in one sandbox.
struct Starts {
    runtime: Samples,
    nsenter: Samples,
    fork_exec: Samples,
}

/// The pod's managed files, as the agent writes them.
fn pod_files(dir: &Path) -> Result<Files> {
    let files = Files::under(dir, false);
    std::fs::create_dir_all(dir)?;
    std::fs::write(&files.hosts, "127.0.0.1\tlocalhost\n")?;
    std::fs::write(&files.resolv, "nameserver 10.96.0.10\n")?;
    std::fs::write(&files.hostname, "bench\n")?;
    Ok(files)
}

/// Waits for a command and fails unless it succeeded.
async fn succeeds(mut cmd: tokio::process::Command) -> Result<()> {
    let status = cmd.status().await?;
    if !status.success() {
        bail!("{cmd:?}: {status}");
    }
    Ok(())
}

async fn starts(dir: &Path, image: &ImageRoot, sandbox_pid: u32, runs: usize) -> Result<Starts> {
    let exe = std::env::current_exe()?;
    let files = pod_files(&dir.join("pod"))?;
    let busybox = image.rootfs.join("bin/busybox");
    let container: Container = serde_json::from_value(json!({"name": "c"}))?;
    let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [container]}}))?;
    let hierarchy = cgroup::detect(Path::new(cgroup::CGROUP_ROOT));
    let group = PathBuf::from("kinet").join(format!("bench{}", std::process::id()));
    let mut out = Starts {
        runtime: Samples::default(),
        nsenter: Samples::default(),
        fork_exec: Samples::default(),
    };
    for _ in 0..runs {
        let start = Instant::now();
        // As the worker does: the cgroup, the spec, then the shim.
        let root = Path::new(cgroup::CGROUP_ROOT);
        let cg = hierarchy.map(|v| Cgroup::at(root, v, &group.join("c")));
        if let Some(cg) = &cg {
            cg.create(root, Limits::default())?;
        }
        let inputs = Inputs {
            image: image.clone(),
            image_user: String::new(),
            argv: vec!["sh".into(), "-c".into(), ":".into()],
            env: vec![("PATH".into(), kinet_runtime::config::DEFAULT_PATH.into())],
            sandbox_pid,
            target_pid: None,
            dir: dir.join("container"),
            mounts: files.mounts(),
            cgroups: cg.iter().flat_map(|cg| cg.dirs().to_vec()).collect(),
        };
        let launch = Launch {
            spec: runspec::container_spec(&pod, &container, inputs).map_err(anyhow::Error::msg)?,
            log: dir.join("container.log"),
            io_dir: dir.join("io"),
            stdin: false,
            stdin_once: false,
        };
        let (mut child, _) = process::spawn(&exe, &launch)?;
        let status = child.wait().await?;
        out.runtime.push(start.elapsed());
        // As the worker does once the container has exited.
        if let Some(cg) = &cg {
            cg.remove();
        }
        if !status.success() {
            let log = std::fs::read_to_string(&launch.log).unwrap_or_default();
            bail!("the container failed ({status}): {log}");
        }

        let start = Instant::now();
        let mut cmd = tokio::process::Command::new("nsenter");
        cmd.arg(format!("--target={sandbox_pid}"))
            .args(["--net", "--uts", "--ipc", "--"])
            .arg(&busybox)
            .args(["sh", "-c", ":"]);
        succeeds(cmd).await?;
        out.nsenter.push(start.elapsed());

        let start = Instant::now();
        let mut cmd = tokio::process::Command::new(&busybox);
        cmd.args(["sh", "-c", ":"]);
        succeeds(cmd).await?;
        out.fork_exec.push(start.elapsed());
    }
    if let Some(v) = hierarchy {
        cgroup::remove_tree(Path::new(cgroup::CGROUP_ROOT), v, &group);
    }
    Ok(out)
}

/// A sandbox of its own (network namespace and pause process) for [`starts`].
async fn sandboxed_starts(dir: &Path, store: &Store, runs: usize) -> Result<Starts> {
    let image = store
        .resolve(SMALL)?
        .context("the small image is not in the store")?;
    let image = ImageRoot {
        rootfs: image.rootfs,
        host_binds: Vec::new(),
    };
    std::fs::create_dir_all(dir)?;
    let netns = format!("kinet-benchct{}", std::process::id());
    kinet_netns::NetNs::create(&netns)?;
    let result = async {
        let exe = std::env::current_exe()?;
        let pause =
            sandbox::start_pause(&exe, Some(&netns), "bench", &dir.join("pause.log")).await?;
        let result = starts(dir, &image, pause.pid, runs).await;
        pause.signal_group(nix::sys::signal::Signal::SIGKILL);
        result
    }
    .await;
    let _ = kinet_netns::delete(&netns);
    result
}

/// Pods of `image` created bound to `node` one at a time; each one's time until Running with
/// an IP. A first pod, not counted, warms the node up.
async fn one_by_one(
    client: &Client,
    tag: &str,
    image: &str,
    args: &[&str],
    node: &str,
    count: usize,
) -> Result<Samples> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cfg = watcher::Config::default().labels(&format!("app={tag}"));
    let mut events = watcher(pods.clone(), cfg).applied_objects().boxed();
    let mut samples = Samples::default();
    for i in 0..=count {
        let name = format!("{tag}-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": tag}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": image,
                "args": args, "imagePullPolicy": "IfNotPresent"}]},
        }))?;
        let start = Instant::now();
        pods.create(&PostParams::default(), &pod).await?;
        loop {
            let p = tokio::time::timeout(Duration::from_secs(60), events.try_next())
                .await
                .with_context(|| format!("{name} not Running within 60 s"))??
                .context("watch ended")?;
            if p.metadata.name.as_deref() == Some(name.as_str()) && running_with_ip(&p) {
                break;
            }
        }
        if i > 0 {
            samples.push(start.elapsed());
        }
    }
    Ok(samples)
}

/// Pod starts of the small image and of a built-in one, then the disk and memory of the
/// small image's running pods.
async fn pods(small: &Path, count: usize) -> Result<()> {
    let c = BenchCluster::up(1)?;
    let store = Store::for_home(c.home())?;
    let record = {
        let (store, small) = (store.clone(), small.to_path_buf());
        tokio::task::spawn_blocking(move || import(&store, &small)).await??
    };
    let client = c.client().await?;
    let node = format!("{}-control-plane", c.name);
    let real = one_by_one(&client, "real", SMALL, &["sleep", "3600"], &node, count).await?;
    let agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.39";
    let builtin = one_by_one(&client, "builtin", agnhost, &["pause"], &node, count).await?;
    println!("| pod start, created bound → Running with IP, {count} pods one at a time | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|");
    for (name, s) in [
        ("real image from the store (busybox `sleep`)", &real),
        (
            "built-in image (agnhost `pause`, kinet-made root)",
            &builtin,
        ),
    ] {
        println!("| {name} | {} | {} |", ms(s.p50()), ms(s.p99()));
    }

    let real_pods = |r: &kinet_agent::pods::PodRecord| r.name.starts_with("real-");
    let records = pod_records(&c.dir(), real_pods);
    let pss: u64 = pod_processes(&c.dir(), real_pods)
        .into_iter()
        .map(pss_kib)
        .sum();
    let disk: u64 = records
        .iter()
        .map(|(dirs, rec)| disk_bytes(&dirs.dir(&rec.uid)))
        .sum();
    let n = records.len().max(1) as f64;
    let rootfs = store.rootfs(&record[0].config)?;
    println!(
        "{} running pods of the real image: memory (PSS of each pod's process trees: unshare, pause, shim, sleep) {:.0} KiB per pod; disk (pod directory: writable layer, logs, managed files) {:.0} KiB per pod; the image, shared: {:.1} MiB compressed, {:.1} MiB unpacked",
        records.len(),
        pss as f64 / n,
        disk as f64 / 1024.0 / n,
        mib(record[0].size()),
        mib(disk_bytes(&rootfs)),
    );
    Ok(())
}

pub async fn run(opts: Options) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("kinet-bench-containers-")
        .tempdir()?;
    let dir = scratch.path().to_path_buf();
    let files = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || build(&dir, opts.mib)).await??
    };
    let small = files.small.clone();
    {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || imports(&dir, &files, opts.runs)).await??;
    }

    let store = Store::open(dir.join("store"))?;
    import(&store, &small)?;
    let s = sandboxed_starts(&dir.join("starts"), &store, opts.runs).await?;
    println!(
        "\ncontainer start to exit of `sh -c :` in one sandbox, {} runs each:",
        opts.runs
    );
    println!("| how | p50 (ms) | p99 (ms) | p50 ratio to nsenter |");
    println!("|---|---:|---:|---:|");
    for (name, x) in [
        (
            "runtime (shim and its forked child: overlay, pivot_root, cgroup, seccomp)",
            &s.runtime,
        ),
        ("host process in the pod's namespaces (nsenter)", &s.nsenter),
        ("host process, plain fork/exec", &s.fork_exec),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            ms(x.p50()),
            ms(x.p99()),
            ratio(x.p50(), s.nsenter.p50())
        );
    }
    println!();
    pods(&small, opts.pods).await
}
