//! `kinet shim`: what sits between the agent and a container process, as containerd's shim or
//! conmon does. It outlives agent restarts and holds the container's stdio: every byte the
//! container writes goes to its log in the CRI format (with the time of each line), its stdin
//! is fed from a FIFO that attaches write to, and with `tty` it runs on a fresh terminal. It
//! exits as the container did (same code, or killed by the same signal).
//!
//! It starts the container through the runtime: it joins the sandbox's namespaces itself
//! (`kinet_runtime::init::join_sandbox`), so its child is the container's PID 1; that child,
//! forked from the shim (`kinet_runtime::init::FirstProcess`), makes the container's root and
//! credentials and executes the container's program, with no other program in between. The agent starts the shim leading its own process group, so stopping
//! the group stops the container too. The shim itself survives SIGTERM to drain the container's last output; a
//! container on a terminal is in a session of its own, so the shim passes signals on to it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use kinet_node_api::logs::cri::{self, Stream};
use kinet_runtime::init::{FirstProcess, OwnPids};
use nix::sys::signal::{kill, raise, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

/// After the container exits, how long its last output may take (a background process that
/// keeps its stdout open would otherwise hold the shim forever).
const DRAIN: Duration = Duration::from_secs(2);

/// Signals the shim takes for the container rather than dying of them.
const FORWARDED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What one container instance's shim does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// The instance's log file.
    pub log: PathBuf,
    /// Where the stdin FIFO and the terminal's name go (see [`IoPaths`]).
    pub io_dir: PathBuf,
    /// The spec's `stdin`, `stdinOnce` and `tty`.
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// The container's spec (a JSON `kinet_runtime::ContainerSpec`).
    pub spec: PathBuf,
}

/// The files through which the agent reaches a running container's stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPaths {
    /// The FIFO the shim copies to the container's stdin.
    pub stdin: PathBuf,
    /// A file holding the path of the container's terminal (for resizes).
    pub tty: PathBuf,
    /// A file holding the host PID of the container's first process (exec enters its
    /// namespaces).
    pub pid: PathBuf,
}

impl IoPaths {
    pub fn in_dir(dir: &Path) -> IoPaths {
        IoPaths {
            stdin: dir.join("stdin"),
            tty: dir.join("tty"),
            pid: dir.join("pid"),
        }
    }
}

impl ShimArgs {
    /// The `kinet shim …` argv that runs these.
    pub fn argv(&self, exe: &Path) -> Vec<String> {
        let mut argv = vec![
            exe.display().to_string(),
            "shim".into(),
            format!("--log={}", self.log.display()),
            format!("--io-dir={}", self.io_dir.display()),
        ];
        for (on, flag) in [
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.tty, "--tty"),
        ] {
            if on {
                argv.push(flag.into());
            }
        }
        argv.push(format!("--spec={}", self.spec.display()));
        argv
    }
}

/// The log, shared by the threads copying each stream.
#[derive(Clone)]
struct Log(Arc<Mutex<File>>);

impl Log {
    fn write(&self, stream: Stream, chunk: &[u8]) {
        let entries = cri::encode(SystemTime::now(), stream, chunk);
        let mut file = self.0.lock().expect("log lock");
        if let Err(e) = file.write_all(&entries) {
            eprintln!("kinet shim: writing the log: {e}");
        }
    }
}

/// Runs the container and exits as it did; returns only if it could not be started.
pub fn run(args: &ShimArgs) -> Result<()> {
    let mut blocked = SigSet::empty();
    for s in FORWARDED {
        blocked.add(s);
    }
    std::fs::create_dir_all(&args.io_dir)
        .with_context(|| format!("creating {}", args.io_dir.display()))?;
    let paths = IoPaths::in_dir(&args.io_dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("opening {}", args.log.display()))?;
    let log = Log(Arc::new(Mutex::new(log)));
    if args.stdin && !paths.stdin.exists() {
        make_fifo(&paths.stdin)?;
    }
    let text =
        std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    let spec: kinet_runtime::ContainerSpec = serde_json::from_slice(&text)?;
    // Still one thread here, as setns and unshare want.
    let own_pids = kinet_runtime::init::join_sandbox(&spec)?;
    let mut cmd = FirstProcess::new(spec);
    let (done_tx, done_rx) = mpsc::channel();
    let (mut child, outputs, stdin_to) = if args.tty {
        let pty = nix::pty::openpty(None, None).context("opening a terminal")?;
        let device = nix::unistd::ttyname(&pty.slave).context("naming the terminal")?;
        let tmp = paths.tty.with_extension("tmp");
        std::fs::write(&tmp, device.as_os_str().as_encoded_bytes())?;
        std::fs::rename(&tmp, &paths.tty)?;
        cmd.stdio(
            Stdio::from(pty.slave.try_clone()?),
            Stdio::from(pty.slave.try_clone()?),
            Stdio::from(pty.slave),
        );
        let child = spawn(|| Ok(cmd.spawn()?), &blocked, own_pids)?;
        let master = File::from(pty.master);
        let writer: Box<dyn Write + Send> = Box::new(master.try_clone()?);
        // The terminal's output (stderr included) is the container's stdout, as runtimes log it.
        copy_out(master, Stream::Stdout, log.clone(), done_tx.clone());
        (child, 1, Some(writer))
    } else {
        let stdin = if args.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.stdio(stdin, Stdio::piped(), Stdio::piped());
        let mut child = spawn(|| Ok(cmd.spawn()?), &blocked, own_pids)?;
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        copy_out(out, Stream::Stdout, log.clone(), done_tx.clone());
        copy_out(err, Stream::Stderr, log.clone(), done_tx.clone());
        let writer = child
            .stdin
            .take()
            .map(|w| Box::new(w) as Box<dyn Write + Send>);
        (child, 2, writer)
    };
    // The parent's copies of the terminal's slave side are gone with `cmd`: reading the master
    // ends once the container's processes have all closed it.
    drop(cmd);
    std::fs::write(&paths.pid, child.id().to_string())?;
    if let (true, Some(to)) = (args.stdin, stdin_to) {
        feed_stdin(paths.stdin.clone(), to, args.stdin_once, args.tty);
    }
    let group = args.tty.then(|| Pid::from_raw(child.id() as i32));
    std::thread::spawn(move || loop {
        if let (Ok(sig), Some(group)) = (blocked.wait(), group) {
            let _ = kill(Pid::from_raw(-group.as_raw()), sig);
        }
    });
    let status = child.wait().context("waiting for the container")?;
    let deadline = std::time::Instant::now() + DRAIN;
    for _ in 0..outputs {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    exit_as(status)
}

/// A fresh FIFO for a container's stdin. The agent makes it before it starts the shim, so an
/// attach that comes as soon as the container is reported running finds it.
pub fn make_fifo(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
        .with_context(|| format!("creating {}", path.display()))
}

/// Starts the container, then blocks `blocked` in the shim, before it starts any thread, so
/// that in every thread: one thread takes them with sigwait. In that order because a child
/// inherits its parent's signal mask through fork and exec: a container started with SIGTERM
/// blocked would sit out every grace period until SIGKILL. A signal in between kills the shim,
/// and with it (`--pdeathsig`) the container, which was sent the same signal as its group.
fn spawn(
    start: impl FnOnce() -> Result<Child>,
    blocked: &SigSet,
    own_pids: OwnPids,
) -> Result<Child> {
    let child = start()?;
    own_pids.restore()?;
    blocked.thread_block().context("blocking signals")?;
    Ok(child)
}

/// Copies one output of the container into the log until it ends; says so on `done`.
fn copy_out(
    mut from: impl Read + Send + 'static,
    stream: Stream,
    log: Log,
    done: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        // EIO from a terminal's master: no process has its slave side open any more.
        while let Ok(n @ 1..) = from.read(&mut buf) {
            log.write(stream, &buf[..n]);
        }
        let _ = done.send(());
    });
}

/// Copies what attaches write to the FIFO into the container's stdin. Each attach is one
/// writer: when it closes, the FIFO is opened again for the next, unless the spec says
/// `stdinOnce`, which closes the container's stdin (a pipe's end: the container reads EOF).
fn feed_stdin(fifo: PathBuf, mut to: Box<dyn Write + Send>, once: bool, tty: bool) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // Blocks until an attach opens it for writing.
            let Ok(mut from) = File::open(&fifo) else {
                return;
            };
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            if once {
                // A terminal has no end of input: hang nothing up, just take no more input.
                if !tty {
                    drop(to);
                }
                return;
            }
        }
    });
}

/// Leaves as the container did: its exit code, or killed by its signal.
pub fn exit_as(status: std::process::ExitStatus) -> ! {
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    let sig = status.signal().and_then(|s| Signal::try_from(s).ok());
    if let Some(sig) = sig {
        let mut one = SigSet::empty();
        one.add(sig);
        // Unblocked in this thread only: the signal raised here takes its default action.
        let _ = one.thread_unblock();
        let _ = raise(sig);
    }
    std::process::exit(128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process's blocked-signal mask, from `/proc/<pid>/status`.
    fn blocked_mask(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .unwrap();
        u64::from_str_radix(mask.trim(), 16).unwrap()
    }

    #[test]
    fn the_container_starts_with_no_signal_blocked_and_the_shim_blocks_them() {
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGTERM);
        let sleep = || Ok(std::process::Command::new("sleep").arg("30").spawn()?);
        let mut child = spawn(sleep, &blocked, OwnPids::current().unwrap()).unwrap();
        let term = 1 << (Signal::SIGTERM as i32 - 1);
        let child_mask = blocked_mask(child.id());
        // This test's own thread now blocks SIGTERM, as the shim's threads do.
        let thread_mask = SigSet::thread_get_mask().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(child_mask & term, 0, "child mask {child_mask:x}");
        assert!(thread_mask.contains(Signal::SIGTERM));
    }

    fn args(stdin: bool, tty: bool) -> ShimArgs {
        ShimArgs {
            log: "/state/pods/u/logs/c/0.log".into(),
            io_dir: "/state/pods/u/io/c".into(),
            stdin,
            stdin_once: stdin,
            tty,
            spec: "/state/pods/u/containers/c/spec.json".into(),
        }
    }

    #[test]
    fn the_agent_runs_the_shim_with_the_spec_s_stdio() {
        assert_eq!(
            args(true, true).argv(Path::new("/bin/kinet")),
            [
                "/bin/kinet",
                "shim",
                "--log=/state/pods/u/logs/c/0.log",
                "--io-dir=/state/pods/u/io/c",
                "--stdin",
                "--stdin-once",
                "--tty",
                "--spec=/state/pods/u/containers/c/spec.json"
            ]
        );
        let plain = args(false, false).argv(Path::new("/bin/kinet"));
        assert!(!plain.iter().any(|a| a.starts_with("--std") || a == "--tty"));
    }

    #[test]
    fn io_files_live_in_the_instance_s_dir() {
        let p = IoPaths::in_dir(Path::new("/d"));
        assert_eq!(p.stdin, Path::new("/d/stdin"));
        assert_eq!(p.tty, Path::new("/d/tty"));
        assert_eq!(p.pid, Path::new("/d/pid"));
    }
}
