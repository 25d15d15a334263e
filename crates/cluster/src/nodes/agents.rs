//! The node agents' processes: `kinet agent --name C --node N` started inside the node's
//! namespace by `nsenter` (which execs it, so the PID is the agent's), detached in its own
//! process group. As for the control plane, a PID is signalled only after
//! `/proc/<pid>/cmdline` shows it is exactly that agent.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::NodePlan;
use crate::state::{self, ClusterDir};

const STOP_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// Starts the agent for `node` (its PID is written to `agents/<node>.pid`). The child is
/// returned so the caller can notice an early exit; until `nsenter` has exec'd, the
/// cmdline is not yet the agent's.
pub fn spawn(dir: &ClusterDir, home: &Path, node: &NodePlan) -> Result<Child> {
    fs::create_dir_all(dir.logs())?;
    fs::create_dir_all(dir.agents())?;
    let log_path = dir.agent_log(&node.name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", node.netns))
        .arg(exe)
        .args(["agent", "--name", &dir.name, "--node", &node.name])
        .env("KINET_HOME", home)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the agent of {}", node.name))?;
    let pid = child.id();
    state::write_file(&dir.agent_pid_file(&node.name), &format!("{pid}\n"), 0o644)?;
    Ok(child)
}

/// Whether `argv` is the agent of `node` in cluster `name`.
pub fn is_agent_cmdline(argv: &[String], name: &str, node: &str) -> bool {
    let [exe, rest @ ..] = argv else {
        return false;
    };
    let exe_name = Path::new(exe).file_name().and_then(|n| n.to_str());
    exe_name == Some("kinet") && rest == ["agent", "--name", name, "--node", node]
}

fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Whether `pid` is alive and is that agent (a zombie has no cmdline).
pub fn is_agent(pid: u32, name: &str, node: &str) -> bool {
    is_agent_cmdline(&cmdline(pid), name, node)
}

fn read_pid(dir: &ClusterDir, node: &str) -> Option<u32> {
    fs::read_to_string(dir.agent_pid_file(node))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The PID of the node's running agent, if any.
pub fn running(dir: &ClusterDir, node: &str) -> Option<u32> {
    read_pid(dir, node).filter(|pid| is_agent(*pid, &dir.name, node))
}

/// Stops the node's agent if it runs (SIGTERM, then SIGKILL after 5 s) and removes its PID
/// file. Returns the PID it stopped.
pub fn stop(dir: &ClusterDir, node: &str) -> Result<Option<u32>> {
    let stopped = match running(dir, node) {
        Some(pid) => {
            let target = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
            signal(target, Signal::SIGTERM)?;
            if !wait_gone(pid, &dir.name, node, STOP_GRACE) {
                if is_agent(pid, &dir.name, node) {
                    signal(target, Signal::SIGKILL)?;
                }
                if !wait_gone(pid, &dir.name, node, STOP_GRACE) {
                    bail!("agent of {node} (pid {pid}) still runs after SIGKILL");
                }
            }
            Some(pid)
        }
        None => None,
    };
    match fs::remove_file(dir.agent_pid_file(node)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
        _ => Ok(stopped),
    }
}

fn signal(pid: Pid, sig: Signal) -> Result<()> {
    match kill(pid, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("sending {sig} to {pid}")),
    }
}

fn wait_gone(pid: u32, name: &str, node: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !is_agent(pid, name, node) {
            return true;
        }
        sleep(POLL);
    }
    !is_agent(pid, name, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_only_the_exact_agent() {
        let ok = argv(&["/x/kinet", "agent", "--name", "c", "--node", "c-worker"]);
        assert!(is_agent_cmdline(&ok, "c", "c-worker"));
        assert!(!is_agent_cmdline(&ok, "c", "c-worker2"));
        assert!(!is_agent_cmdline(&ok, "d", "c-worker"));
        for bad in [
            &["nsenter", "--net=/run/netns/x", "/x/kinet", "agent"][..],
            &["/x/kinet", "serve", "--name", "c"],
            &["/x/sleep", "agent", "--name", "c", "--node", "c-worker"],
            &[],
        ] {
            assert!(!is_agent_cmdline(&argv(bad), "c", "c-worker"), "{bad:?}");
        }
    }

    #[test]
    fn a_foreign_pid_in_the_pid_file_is_never_signalled() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(home.path(), "c");
        fs::create_dir_all(dir.agents()).unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        fs::write(dir.agent_pid_file("c-worker"), format!("{pid}\n")).unwrap();
        assert_eq!(running(&dir, "c-worker"), None);
        assert_eq!(stop(&dir, "c-worker").unwrap(), None);
        assert!(child.try_wait().unwrap().is_none(), "sleep was signalled");
        assert!(!dir.agent_pid_file("c-worker").exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
