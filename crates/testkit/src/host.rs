//! A simulated host for `kinet join`: an existing network namespace (a cluster's outside
//! namespace, reached only over the underlay bridge) with a mount namespace of its own, where
//! the server's state folder is hidden under an empty tmpfs, and a PID namespace of its own.
//! Its init lives as long as the value, so daemons started there (the joined agent's
//! supervisor) outlive the command that started them; dropping it kills the init, which ends
//! every process of that PID namespace.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct SimulatedHost {
    unshare: Child,
    /// The PID namespace's init, as the caller's PID namespace numbers it.
    init: Pid,
}

impl SimulatedHost {
    /// The host in network namespace `netns`, with `hidden` (the server's `KINET_HOME`)
    /// covered by an empty tmpfs.
    pub fn start(netns: &str, hidden: &Path) -> Result<SimulatedHost> {
        let script = format!(
            "mount --make-rprivate / && mount -t tmpfs simulated-host {} && exec sleep infinity",
            hidden.display()
        );
        let unshare = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(["unshare", "--mount", "--pid", "--fork", "--mount-proc"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            // unshare complains when its child is killed at the end; nothing else is said here.
            .stderr(Stdio::null())
            .spawn()
            .context("starting the simulated host")?;
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut host = SimulatedHost {
            unshare,
            init: Pid::from_raw(0),
        };
        // The init is ready once it is `sleep`: the tmpfs is mounted by then.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pid = std::fs::read_to_string(&children).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse() {
                host.init = Pid::from_raw(pid);
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"));
                if comm.is_ok_and(|c| c == "sleep\n") {
                    return Ok(host);
                }
            }
            if Instant::now() > deadline {
                bail!("the simulated host in {netns} did not start (ip netns exec, unshare or mount failed)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `script` with `sh -c` on the host (its network, mount and PID namespaces), with
    /// `env` set and `KUBECONFIG` unset.
    pub fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "--net", "--mount", "--pid"])
            .args(["sh", "-c", script])
            .envs(env.iter().copied())
            .env_remove("KUBECONFIG")
            .output()
            .expect("running nsenter")
    }
}

impl Drop for SimulatedHost {
    fn drop(&mut self) {
        if self.init.as_raw() > 0 {
            let _ = kill(self.init, Signal::SIGKILL);
        }
        let _ = self.unshare.wait();
    }
}
