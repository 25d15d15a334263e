//! Container processes: a [`shim`](super::shim), which holds their stdio and writes their
//! log, starts them through the runtime (`kinet_runtime`) in the sandbox's namespaces. The
//! shim leads its own process group, so that stopping it reaches the container and whatever
//! it forked.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kinet_runtime::ContainerSpec;
use nix::sys::signal::Signal;

use super::record::Proc;
use super::shim::{make_fifo, IoPaths, ShimArgs};

/// What to run for one container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The container, as the runtime takes it.
    pub spec: ContainerSpec,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Where the shim puts the stdin FIFO, the terminal's name and the container's PID.
    pub io_dir: PathBuf,
    /// The spec's `stdin` and `stdinOnce` (`tty` is the spec's `process.terminal`).
    pub stdin: bool,
    pub stdin_once: bool,
}

/// Starts a container instance under its shim (`exe shim …`; `exe` is the kinet binary),
/// on a fresh writable layer: the instance's directory is emptied first.
pub fn spawn(exe: &Path, l: &Launch) -> std::io::Result<(tokio::process::Child, Proc)> {
    if let Some(parent) = l.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The shim's own complaints (it could not start the container) go to the log too.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log)?;
    if l.stdin {
        make_fifo(&IoPaths::in_dir(&l.io_dir).stdin).map_err(std::io::Error::other)?;
    }
    let _ = std::fs::remove_file(IoPaths::in_dir(&l.io_dir).pid);
    match std::fs::remove_dir_all(&l.spec.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(&l.spec.dir)?;
    let spec_file = l.spec.dir.join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&l.spec)?)?;
    let shim = ShimArgs {
        log: l.log.clone(),
        io_dir: l.io_dir.clone(),
        stdin: l.stdin,
        stdin_once: l.stdin_once,
        tty: l.spec.process.terminal,
        spec: spec_file,
    };
    let argv = shim.argv(exe);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let proc = Proc::of(pid).ok_or_else(|| std::io::Error::other("exited at once"))?;
    Ok((child, proc))
}

/// The host PID of a running container's first process, as its shim recorded it.
pub fn container_pid(io_dir: &Path) -> Option<u32> {
    read_pid(&IoPaths::in_dir(io_dir).pid)
}

/// The PID in a shim's PID file.
pub fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The exit code a runtime reports: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Waits for a process that is not our child (adopted after an agent restart) to end.
pub async fn wait_adopted(p: Proc) {
    while p.alive() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The process control that stopping needs: the seam between the termination sequence
/// and the kernel, so the sequence is tested against a recording fake.
pub trait Signals {
    fn alive(&self, p: Proc) -> bool;
    /// Signals `p`'s process group, if `p` is still the process it was.
    fn signal_group(&self, p: Proc, sig: Signal);
}

/// The host's processes.
#[derive(Debug, Clone, Copy)]
pub struct Host;

impl Signals for Host {
    fn alive(&self, p: Proc) -> bool {
        p.alive()
    }

    fn signal_group(&self, p: Proc, sig: Signal) {
        p.signal_group(sig)
    }
}

/// Stops a process group gracefully: SIGTERM, then SIGKILL after `grace`.
pub async fn stop(p: Proc, grace: Duration) {
    stop_with(&Host, p, grace).await
}

/// [`stop`] through `sys`. SIGKILL goes to the group even when its leader left in time:
/// what it forked must not outlive the container.
pub async fn stop_with(sys: &impl Signals, p: Proc, grace: Duration) {
    sys.signal_group(p, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while sys.alive(p) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sys.signal_group(p, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that leaves after `survives` more liveness checks once it got a signal
    /// in `leaves_on` (none: it ignores signals), recording what it was sent.
    struct Fake {
        leaves_on: Option<Signal>,
        survives: std::cell::Cell<usize>,
        dead: std::cell::Cell<bool>,
        sent: std::cell::RefCell<Vec<Signal>>,
    }

    impl Fake {
        fn new(leaves_on: Option<Signal>, survives: usize) -> Fake {
            Fake {
                leaves_on,
                survives: survives.into(),
                dead: false.into(),
                sent: Vec::new().into(),
            }
        }
    }

    impl Signals for Fake {
        fn alive(&self, _: Proc) -> bool {
            let told = self
                .sent
                .borrow()
                .iter()
                .any(|s| Some(*s) == self.leaves_on);
            if told && !self.dead.get() {
                match self.survives.get() {
                    0 => self.dead.set(true),
                    n => self.survives.set(n - 1),
                }
            }
            !self.dead.get()
        }

        fn signal_group(&self, p: Proc, sig: Signal) {
            // As the real one: a process that left is not signalled.
            if self.alive(p) {
                self.sent.borrow_mut().push(sig);
            }
        }
    }

    const P: Proc = Proc {
        pid: 4242,
        start: 1,
    };

    #[tokio::test]
    async fn a_process_that_leaves_on_term_is_not_killed() {
        let fake = Fake::new(Some(Signal::SIGTERM), 2);
        stop_with(&fake, P, Duration::from_secs(3600)).await;
        assert_eq!(*fake.sent.borrow(), [Signal::SIGTERM]);
    }

    #[tokio::test]
    async fn a_process_that_ignores_term_is_killed_after_the_grace_period() {
        let fake = Fake::new(None, 0);
        stop_with(&fake, P, Duration::from_millis(120)).await;
        assert_eq!(*fake.sent.borrow(), [Signal::SIGTERM, Signal::SIGKILL]);
    }

    #[tokio::test]
    async fn no_grace_sends_term_then_kill_at_once() {
        let fake = Fake::new(Some(Signal::SIGKILL), 0);
        stop_with(&fake, P, Duration::ZERO).await;
        assert_eq!(*fake.sent.borrow(), [Signal::SIGTERM, Signal::SIGKILL]);
        assert!(!fake.alive(P));
    }
}
