//! kinet's own processes: spawning the control plane detached, recognising a `kinet …`
//! process (control plane, agent supervisor, agent), stopping one, and reading their logs.
//!
//! A PID file can outlive its process and the PID can be reused, so every signal is
//! preceded by a check that `/proc/<pid>/cmdline` is exactly that command, e.g.
//! `kinet serve --name NAME`.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::state::ClusterDir;

/// What can go wrong starting or stopping a kinet process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending {signal} to pid {pid}")]
    Signal {
        pid: u32,
        signal: Signal,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("kinet {command} (pid {pid}) is still running after SIGKILL")]
    StillRunning { command: String, pid: u32 },
}

pub type Result<T, E = ProcessError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Io { what, source }
}

/// Lines of a log shown when a step fails.
const LOG_TAIL_LINES: usize = 40;
const STOP_GRACE: Duration = Duration::from_secs(10);
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Starts API server `index` (`kinet serve --name NAME`, with `--index I` past the first) in
/// its own process group (so ^C on `kinet up` does not reach it), stdin closed, output
/// appended to its log.
pub fn spawn_control_plane(dir: &ClusterDir, home: &Path, index: usize) -> Result<Child> {
    let log_path = dir.control_plane_log(index);
    fs::create_dir_all(dir.logs()).map_err(io(format!("creating {}", dir.logs().display())))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(format!("opening {}", log_path.display())))?;
    let exe = std::env::current_exe().map_err(io("locating the kinet binary"))?;
    Command::new(exe)
        .args(serve_args(&dir.name, index))
        .env("KINET_HOME", home)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("duplicating the log file"))?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(io("starting the control plane"))
}

/// The name every kinet process must run under: `down` and `leave` recognise the cluster's
/// processes by it, so one started by a renamed copy could never be stopped.
const PROGRAM: &str = "kinet";

/// Refuses to start a cluster's processes from a program not named `kinet`.
pub fn require_kinet_name() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    named_kinet(&exe)
}

/// Whether the program at `exe` is named `kinet`.
fn is_program(exe: &Path) -> bool {
    exe.file_name().and_then(|n| n.to_str()) == Some(PROGRAM)
}

fn named_kinet(exe: &Path) -> anyhow::Result<()> {
    if is_program(exe) {
        return Ok(());
    }
    anyhow::bail!(
        "`kinet down` finds a cluster's processes by the program name `{PROGRAM}`, and this \
         program is {}: run it under the name `{PROGRAM}` (from any folder)",
        exe.display()
    )
}

/// Whether `argv` is the kinet binary run with exactly `args`.
pub fn is_kinet_cmdline(argv: &[String], args: &[&str]) -> bool {
    let [exe, rest @ ..] = argv else {
        return false;
    };
    is_program(Path::new(exe)) && rest == args
}

/// Whether `pid` is alive and is `kinet <args>` (a zombie has no cmdline).
pub fn is_kinet(pid: u32, args: &[&str]) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    is_kinet_cmdline(&argv, args)
}

fn serve_args(name: &str, index: usize) -> Vec<String> {
    let mut args = vec!["serve".to_string(), "--name".into(), name.into()];
    if index > 0 {
        args.extend(["--index".into(), index.to_string()]);
    }
    args
}

/// Whether `pid` is alive and is API server `index` of cluster `name`.
pub fn is_control_plane(pid: u32, name: &str, index: usize) -> bool {
    let args = serve_args(name, index);
    is_kinet(pid, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The PID of the cluster's running API server `index`, if any.
pub fn running_pid(dir: &ClusterDir, index: usize) -> Option<u32> {
    dir.read_pid(index)
        .filter(|pid| is_control_plane(*pid, &dir.name, index))
}

/// What `stop` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was running and has exited after SIGTERM.
    Terminated,
    /// It ignored SIGTERM for the grace period and was killed.
    Killed,
    /// Nothing of ours was running under that PID.
    NotRunning,
}

/// Stops API server `index`: SIGTERM, up to 10 s for it to exit, then SIGKILL.
pub fn stop(pid: u32, name: &str, index: usize) -> Result<Stopped> {
    let args = serve_args(name, index);
    stop_kinet(
        pid,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        STOP_GRACE,
    )
}

/// Stops `kinet <args>` running as `pid`: SIGTERM, up to `grace` for it to exit, then
/// SIGKILL. A PID that is not exactly that process is never signalled.
pub fn stop_kinet(pid: u32, args: &[&str], grace: Duration) -> Result<Stopped> {
    if !is_kinet(pid, args) {
        return Ok(Stopped::NotRunning);
    }
    signal(pid, Signal::SIGTERM)?;
    if wait_gone(pid, args, grace) {
        return Ok(Stopped::Terminated);
    }
    if is_kinet(pid, args) {
        signal(pid, Signal::SIGKILL)?;
    }
    if wait_gone(pid, args, KILL_WAIT) {
        return Ok(Stopped::Killed);
    }
    Err(ProcessError::StillRunning {
        command: args.join(" "),
        pid,
    })
}

fn signal(pid: u32, sig: Signal) -> Result<()> {
    // /proc just showed this PID, so it fits a pid_t; one that did not could not exist.
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match kill(Pid::from_raw(raw), sig) {
        // It exited between the check and the signal.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Signal {
            pid,
            signal: sig,
            source,
        }),
    }
}

fn wait_gone(pid: u32, args: &[&str], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !is_kinet(pid, args) {
            return true;
        }
        sleep(POLL);
    }
    !is_kinet(pid, args)
}

/// The last `lines` lines `log` got since byte `from`.
pub fn log_tail(log: &Path, from: u64, lines: usize) -> Vec<String> {
    let Ok(bytes) = fs::read(log) else {
        return Vec::new();
    };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Prints the last lines `log` got since byte `from` (what explains a failure).
pub fn print_log_tail(log: &Path, from: u64) {
    if !log.exists() {
        return;
    }
    eprintln!("\nLast lines of {}:", log.display());
    for line in log_tail(log, from, LOG_TAIL_LINES) {
        eprintln!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    fn is_serve_cmdline(argv: &[String], name: &str) -> bool {
        let args = serve_args(name, 0);
        is_kinet_cmdline(argv, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn only_a_program_named_kinet_may_start_a_cluster() {
        assert!(named_kinet(Path::new("/usr/local/bin/kinet")).is_ok());
        assert!(named_kinet(Path::new("/tmp/copy/kinet")).is_ok());
        let err = named_kinet(Path::new("/tmp/kinet-pie")).unwrap_err();
        assert!(err.to_string().contains("/tmp/kinet-pie"), "{err}");
        // What `down` would then refuse to signal.
        let started = argv(&["/tmp/kinet-pie", "serve", "--name", "dev"]);
        assert!(!is_serve_cmdline(&started, "dev"));
    }

    #[test]
    fn recognises_only_our_exact_serve_command() {
        let ok = argv(&["/usr/local/bin/kinet", "serve", "--name", "dev"]);
        assert!(is_serve_cmdline(&ok, "dev"));
        assert!(is_serve_cmdline(
            &argv(&["kinet", "serve", "--name", "dev"]),
            "dev"
        ));
        assert!(!is_serve_cmdline(&ok, "de"));
        assert!(!is_serve_cmdline(&ok, "dev2"));
        assert_eq!(
            serve_args("dev", 2),
            ["serve", "--name", "dev", "--index", "2"]
        );
        for bad in [
            &["/usr/bin/sleep", "serve", "--name", "dev"][..],
            &["kinet", "serve", "--name", "dev", "--index", "1"],
            &["kinet", "up", "--name", "dev"],
            &["kinet", "serve", "--name", "dev", "extra"],
            &["kinet"],
            &[],
        ] {
            assert!(!is_serve_cmdline(&argv(bad), "dev"), "{bad:?}");
        }
    }

    #[test]
    fn other_processes_are_never_signalled() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(!is_control_plane(pid, "dev", 0));
        assert_eq!(stop(pid, "dev", 0).unwrap(), Stopped::NotRunning);
        // Still alive: stop() did not touch it.
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_missing_pid_is_not_running() {
        assert!(!is_control_plane(u32::MAX, "dev", 0));
        assert_eq!(stop(u32::MAX, "dev", 0).unwrap(), Stopped::NotRunning);
    }
}
