//! A pod's sandbox, as a CRI runtime makes one: a network namespace wired to `cbr0` by the
//! CNI steps, and a pause process holding that network namespace plus its own UTS, IPC and
//! mount namespaces, in which the pod's hostname is set and its managed files are
//! bind-mounted (see [`super::pause`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kinet_cni::{NodeNetwork, PodSpec};
use kinet_netns::NetNs;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::record::Proc;

/// How long the pause process may take to set up its mounts.
const PAUSE_READY: Duration = Duration::from_secs(10);

/// The files a sandbox mounts, all in the pod's directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// Written for `/etc/hosts`.
    pub hosts: PathBuf,
    /// Written for `/etc/resolv.conf`.
    pub resolv: PathBuf,
    /// The service-account directory (token, ca.crt, namespace), if mounted.
    pub service_account: Option<PathBuf>,
}

impl Files {
    /// The paths under `pod_dir`.
    pub fn under(pod_dir: &Path, service_account: bool) -> Files {
        Files {
            hosts: pod_dir.join("etc-hosts"),
            resolv: pod_dir.join("resolv.conf"),
            service_account: service_account.then(|| pod_dir.join("serviceaccount")),
        }
    }
}

/// Why a sandbox could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Netns(#[from] kinet_netns::Error),
    #[error(transparent)]
    Cni(#[from] kinet_cni::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("pause exited at once (see {})", .log.display())]
    PauseExited { log: std::path::PathBuf },
    #[error("the pause process did not set up the sandbox (see {})", .log.display())]
    PauseNotReady { log: std::path::PathBuf },
    #[error("pause exited")]
    PauseGone,
}

/// The pod's network namespace name: kinet-owned, unique per pod uid.
pub fn netns_name(cluster: &str, uid: &str) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("kinet-{cluster}-pod-{short}")
}

/// Creates (or repairs) the pod's network: namespace, veth on `cbr0`, address and routes.
pub async fn network(
    node: &NetNs,
    net: &NodeNetwork,
    netns: &str,
    ip: std::net::Ipv4Addr,
) -> Result<String, SandboxError> {
    let pod_ns = match NetNs::create(netns) {
        Ok(ns) => ns,
        Err(kinet_netns::Error::Exists(_)) => NetNs::open(netns)?,
        Err(e) => return Err(e.into()),
    };
    let host_veth = kinet_cni::host_veth_name(netns);
    let spec = PodSpec {
        ifname: "eth0".into(),
        ip,
        prefix: net.pod_cidr.prefix(),
        gateway: net.bridge_ip,
        host_veth: host_veth.clone(),
        mtu: net.pod_mtu(),
    };
    kinet_cni::add_pod(node, &pod_ns, &spec).await?;
    Ok(host_veth)
}

/// Removes the pod's network: the veth (both ends) and the namespace. Missing is success.
pub async fn remove_network(
    node: &NetNs,
    netns: &str,
    host_veth: &str,
) -> Result<(), SandboxError> {
    kinet_cni::del_pod(node, host_veth).await?;
    match kinet_netns::delete(netns) {
        Ok(()) | Err(kinet_netns::Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Starts the pause process in the pod's namespaces and waits until it has set the hostname
/// and mounted the files. `exe` is the kinet binary.
pub async fn start_pause(
    exe: &Path,
    netns: &str,
    hostname: &str,
    files: &Files,
    log: &Path,
) -> Result<Proc, SandboxError> {
    let mut cmd = tokio::process::Command::new("nsenter");
    cmd.arg(format!("--net={}/{netns}", kinet_netns::NETNS_RUN_DIR))
        .args([
            "--",
            "unshare",
            "--uts",
            "--ipc",
            "--mount",
            "--propagation",
            "private",
            "--",
        ])
        .arg(exe)
        .args(["pause", "--hostname", hostname, "--hosts"])
        .arg(&files.hosts)
        .arg("--resolv")
        .arg(&files.resolv);
    if let Some(sa) = &files.service_account {
        cmd.arg("--service-account").arg(sa);
    }
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn()?;
    let pid = child.id().ok_or_else(|| SandboxError::PauseExited {
        log: log.to_path_buf(),
    })?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let read = tokio::time::timeout(PAUSE_READY, BufReader::new(stdout).read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(_))) || line.trim() != super::pause::READY {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(SandboxError::PauseNotReady {
            log: log.to_path_buf(),
        });
    }
    let proc = Proc::of(pid).ok_or(SandboxError::PauseGone)?;
    // The agent does not wait on it: a restarted agent adopts it by PID. Reap it if it ends
    // while this agent runs, so it does not stay a zombie.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(proc)
}
