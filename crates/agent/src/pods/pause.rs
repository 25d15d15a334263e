//! `kinet pause`: the sandbox's pause process. Started by the agent as
//! `nsenter --net=<pod netns> -- unshare --uts --ipc --mount --propagation private -- kinet pause …`,
//! so it already sits in the pod's network namespace and in fresh UTS, IPC and (private)
//! mount namespaces. It sets the pod's hostname, bind-mounts the managed `/etc/hosts` and
//! `/etc/resolv.conf`, gives the pod its own `/run` with the service-account files at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, says [`READY`], then sleeps until killed.
//! Containers join these namespaces, so they see exactly this.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

/// The line the pause process prints once the sandbox is set up.
pub const READY: &str = "ready";

/// Where service-account files appear in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/run/secrets/kubernetes.io/serviceaccount";

/// What the pause process sets up.
#[derive(Debug, Clone)]
pub struct PauseArgs {
    /// The pod's hostname.
    pub hostname: String,
    /// File to mount on /etc/hosts.
    pub hosts: PathBuf,
    /// File to mount on /etc/resolv.conf.
    pub resolv: PathBuf,
    /// Directory to mount on the service-account path, if any.
    pub service_account: Option<PathBuf>,
}

fn bind(source: &Path, target: &str) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind-mounting {} on {target}", source.display()))
}

/// Sets up the sandbox and never returns unless that fails; SIGTERM/SIGKILL end it.
pub fn run(args: &PauseArgs) -> Result<()> {
    for p in [
        Some(&args.hosts),
        Some(&args.resolv),
        args.service_account.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if p.starts_with("/run") || p.starts_with("/var/run") {
            bail!("{} is under /run, which each pod gets empty", p.display());
        }
    }
    nix::unistd::sethostname(&args.hostname).context("setting the hostname")?;
    bind(&args.hosts, "/etc/hosts")?;
    bind(&args.resolv, "/etc/resolv.conf")?;
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=16m"),
    )
    .context("mounting the pod's /run")?;
    if let Some(sa) = &args.service_account {
        std::fs::create_dir_all(SERVICE_ACCOUNT_DIR)
            .with_context(|| format!("creating {SERVICE_ACCOUNT_DIR}"))?;
        bind(sa, SERVICE_ACCOUNT_DIR)?;
    }
    println!("{READY}");
    loop {
        std::thread::park();
    }
}
