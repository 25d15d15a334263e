//! A pod's sandbox, as a CRI runtime makes one: a network namespace wired to `cbr0` by the
//! CNI steps, and a pause process holding that network namespace plus the pod's UTS, IPC
//! and PID namespaces, in which the pod's hostname is set (see [`super::pause`]); and the
//! managed files the runtime mounts into each container.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kinet_cni::{NodeNetwork, PodSpec};
use kinet_netns::NetNs;
use kinet_runtime::BindMount;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::record::Proc;

/// How long the pause process may take to set up its mounts.
const PAUSE_READY: Duration = Duration::from_secs(10);

/// The files every container of a pod gets, all in the pod's directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// Written for `/etc/hosts`.
    pub hosts: PathBuf,
    /// Written for `/etc/resolv.conf`.
    pub resolv: PathBuf,
    /// Written for `/etc/hostname`.
    pub hostname: PathBuf,
    /// The service-account directory (token, ca.crt, namespace), if mounted.
    pub service_account: Option<PathBuf>,
}

impl Files {
    /// The paths under `pod_dir`.
    pub fn under(pod_dir: &Path, service_account: bool) -> Files {
        Files {
            hosts: pod_dir.join("etc-hosts"),
            resolv: pod_dir.join("resolv.conf"),
            hostname: pod_dir.join("hostname"),
            service_account: service_account.then(|| pod_dir.join("serviceaccount")),
        }
    }

    /// The bind mounts that show them in a container, as the kubelet mounts them.
    pub fn mounts(&self) -> Vec<BindMount> {
        let file = |source: &PathBuf, target: &str| BindMount {
            source: source.clone(),
            target: target.into(),
            read_only: false,
        };
        let mut v = vec![
            file(&self.hosts, "/etc/hosts"),
            file(&self.hostname, "/etc/hostname"),
            file(&self.resolv, "/etc/resolv.conf"),
        ];
        if let Some(sa) = &self.service_account {
            v.push(BindMount {
                source: sa.clone(),
                target: super::pause::SERVICE_ACCOUNT_DIR.into(),
                read_only: true,
            });
        }
        v
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
        route_mtu: net.pod_route_mtu(),
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

/// Starts the pause process in the pod's namespaces and waits until it has set the hostname;
/// in `netns`, or without one (host network) in the agent's own: the node's.
/// `exe` is the kinet binary. The process recorded is `unshare`, which holds the pod's
/// namespaces too (its children's PID namespace is the pod's) and takes the pause with it.
pub async fn start_pause(
    exe: &Path,
    netns: Option<&str>,
    hostname: &str,
    log: &Path,
) -> Result<Proc, SandboxError> {
    let unshare = ["unshare", "--uts", "--ipc", "--pid", "--kill-child", "--"];
    let mut cmd = match netns {
        Some(netns) => {
            let mut cmd = tokio::process::Command::new("nsenter");
            cmd.arg(format!("--net={}/{netns}", kinet_netns::NETNS_RUN_DIR))
                .arg("--")
                .args(unshare);
            cmd
        }
        None => {
            let mut cmd = tokio::process::Command::new(unshare[0]);
            cmd.args(&unshare[1..]);
            cmd
        }
    };
    cmd.arg(exe).args(["pause", "--hostname", hostname]);
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
