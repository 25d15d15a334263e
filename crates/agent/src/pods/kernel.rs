//! The pod worker's seam in front of the machine: the pod network, the pause process,
//! container processes and their cgroups. [`Linux`] does it for real; the worker's logic is
//! tested without root against a fake (as youki and the CNI plugins test theirs).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use kinet_cni::NodeNetwork;
use kinet_netns::NetNs;
use kinet_runtime::cgroup::{self, Cgroup, Limits};

use super::process::{self, Launch};
use super::record::Proc;
use super::sandbox::{self, SandboxError};

/// A started container: its shim, and its exit code once it ends (`None`: unknown).
pub struct Started {
    pub process: Proc,
    pub exit: BoxFuture<'static, Option<i32>>,
}

/// What the pod worker does to the machine.
pub trait Kernel: Send + Sync + 'static {
    /// Creates (or repairs) the pod's network namespace `netns` with address `ip`.
    fn network<'a>(
        &'a self,
        netns: &'a str,
        ip: Ipv4Addr,
    ) -> BoxFuture<'a, Result<(), SandboxError>>;
    /// Removes the pod's network; missing is success.
    fn remove_network<'a>(
        &'a self,
        netns: &'a str,
        host_veth: &'a str,
    ) -> BoxFuture<'a, Result<(), SandboxError>>;
    /// Starts the pause process in `netns` (`None`: the node's, the agent's own), once it
    /// has set `hostname`.
    fn start_pause<'a>(
        &'a self,
        netns: Option<&'a str>,
        hostname: &'a str,
        log: &'a Path,
    ) -> BoxFuture<'a, Result<Proc, SandboxError>>;
    /// Starts a container instance.
    fn start(&self, launch: &Launch) -> std::io::Result<Started>;
    /// SIGTERM to the process's group, SIGKILL after `grace`.
    fn stop(&self, p: Proc, grace: Duration) -> BoxFuture<'static, ()>;
    /// Whether this very process still runs.
    fn alive(&self, p: Proc) -> bool;
    /// Ends when a process it did not start (adopted after an agent restart) ends.
    fn wait_adopted(&self, p: Proc) -> BoxFuture<'static, ()>;
    /// Makes the cgroup `rel` with `limits`; its directories, none where there are no
    /// cgroups.
    fn limit(&self, rel: &Path, limits: Limits) -> std::io::Result<Vec<PathBuf>>;
    /// Whether the OOM killer struck in cgroup `rel`.
    fn oom_killed(&self, rel: &Path) -> bool;
    /// Removes cgroup `rel` and every cgroup under it.
    fn remove_cgroups(&self, rel: &Path);
}

/// The real machine: the node's namespace and network, the kinet binary, the host's cgroups.
pub struct Linux {
    pub node_ns: NetNs,
    pub net: NodeNetwork,
    /// The kinet binary, for `kinet pause` and the shim.
    pub exe: PathBuf,
}

/// The host's cgroup hierarchy, detected once: the host does not change it under us.
fn hierarchy() -> Option<(&'static Path, cgroup::Version)> {
    static HIERARCHY: std::sync::OnceLock<Option<cgroup::Version>> = std::sync::OnceLock::new();
    let root = Path::new(cgroup::CGROUP_ROOT);
    HIERARCHY
        .get_or_init(|| cgroup::detect(root))
        .map(|v| (root, v))
}

impl Kernel for Linux {
    fn network<'a>(
        &'a self,
        netns: &'a str,
        ip: Ipv4Addr,
    ) -> BoxFuture<'a, Result<(), SandboxError>> {
        sandbox::network(&self.node_ns, &self.net, netns, ip)
            .map(|r| r.map(drop))
            .boxed()
    }

    fn remove_network<'a>(
        &'a self,
        netns: &'a str,
        host_veth: &'a str,
    ) -> BoxFuture<'a, Result<(), SandboxError>> {
        sandbox::remove_network(&self.node_ns, netns, host_veth).boxed()
    }

    fn start_pause<'a>(
        &'a self,
        netns: Option<&'a str>,
        hostname: &'a str,
        log: &'a Path,
    ) -> BoxFuture<'a, Result<Proc, SandboxError>> {
        sandbox::start_pause(&self.exe, netns, hostname, log).boxed()
    }

    fn start(&self, launch: &Launch) -> std::io::Result<Started> {
        let (mut child, process) = process::spawn(&self.exe, launch)?;
        let exit = async move { child.wait().await.ok().map(process::exit_code) }.boxed();
        Ok(Started { process, exit })
    }

    fn stop(&self, p: Proc, grace: Duration) -> BoxFuture<'static, ()> {
        process::stop(p, grace).boxed()
    }

    fn alive(&self, p: Proc) -> bool {
        p.alive()
    }

    fn wait_adopted(&self, p: Proc) -> BoxFuture<'static, ()> {
        process::wait_adopted(p).boxed()
    }

    fn limit(&self, rel: &Path, limits: Limits) -> std::io::Result<Vec<PathBuf>> {
        let Some((root, version)) = hierarchy() else {
            return Ok(Vec::new());
        };
        let cg = Cgroup::at(root, version, rel);
        cg.create(root, limits)?;
        Ok(cg.dirs().to_vec())
    }

    fn oom_killed(&self, rel: &Path) -> bool {
        hierarchy().is_some_and(|(root, v)| Cgroup::at(root, v, rel).oom_killed())
    }

    fn remove_cgroups(&self, rel: &Path) {
        remove_cgroup_tree(rel);
    }
}

/// Removes cgroup `rel` and those under it; true when none is left.
pub fn remove_cgroup_tree(rel: &Path) -> bool {
    hierarchy().is_none_or(|(root, v)| cgroup::remove_tree(root, v, rel))
}
