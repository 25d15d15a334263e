//! `kinet pause`: the sandbox's pause process. Started by the agent as
//! `nsenter --net=<pod netns> -- unshare --uts --ipc --pid --fork --kill-child -- kinet pause …`,
//! so it sits in the pod's network namespace and in fresh UTS, IPC and PID namespaces (it is
//! PID 1 of the pod's PID namespace, which containers share with `shareProcessNamespace`).
//! It sets the pod's hostname, says [`READY`], then sleeps until killed. Containers join its
//! network, UTS and IPC namespaces; their files are mounted by the runtime.

use anyhow::{Context, Result};

/// The line the pause process prints once the sandbox is set up.
pub const READY: &str = "ready";

/// Where service-account files appear in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the pause process sets up.
#[derive(Debug, Clone)]
pub struct PauseArgs {
    /// The pod's hostname.
    pub hostname: String,
}

/// Sets up the sandbox and never returns unless that fails; SIGTERM/SIGKILL end it.
pub fn run(args: &PauseArgs) -> Result<()> {
    nix::unistd::sethostname(&args.hostname).context("setting the hostname")?;
    println!("{READY}");
    loop {
        std::thread::park();
    }
}
