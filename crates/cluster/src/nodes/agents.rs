//! The node agents' processes. Each agent runs under a small supervisor,
//! `kinet supervise --name C --node N` (host namespace, its own process group, detached),
//! which starts `kinet agent --name C --node N` inside the node's namespace through
//! `nsenter` (which execs it, so the PID is the agent's), restarts it with back-off when it
//! exits, and records what happened (see [`crate::supervisor`]). As for the control plane, a
//! PID is signalled only after `/proc/<pid>/cmdline` shows it is exactly that process.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::NodePlan;
use crate::process::{is_kinet, is_kinet_cmdline, stop_kinet};
use crate::state::{self, ClusterDir};

/// How long an agent gets to stop after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// The supervisor stops its agent first, so it gets the agent's grace and then some.
const SUPERVISOR_STOP_GRACE: Duration = Duration::from_secs(8);

fn agent_args<'a>(name: &'a str, node: &'a str) -> [&'a str; 5] {
    ["agent", "--name", name, "--node", node]
}

fn supervisor_args<'a>(name: &'a str, node: &'a str) -> [&'a str; 5] {
    ["supervise", "--name", name, "--node", node]
}

fn log_file(dir: &ClusterDir, node: &str) -> Result<fs::File> {
    fs::create_dir_all(dir.logs())?;
    let path = dir.agent_log(node);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Starts the supervisor of `node`'s agent (its PID is written to
/// `agents/<node>.supervisor.pid`; the record of an earlier supervisor is removed). The child
/// is returned so the caller notices if the supervisor itself ends.
pub fn spawn(dir: &ClusterDir, home: &Path, node: &NodePlan) -> Result<Child> {
    fs::create_dir_all(dir.agents())?;
    match fs::remove_file(dir.agent_record(&node.name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
        _ => {}
    }
    let log = log_file(dir, &node.name)?;
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let child = Command::new(exe)
        .args(supervisor_args(&dir.name, &node.name))
        .env("KINET_HOME", home)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the agent supervisor of {}", node.name))?;
    let pid = child.id();
    state::write_file(
        &dir.supervisor_pid_file(&node.name),
        &format!("{pid}\n"),
        0o644,
    )?;
    Ok(child)
}

/// The agent's command: `nsenter --net=<node netns> kinet agent ...`, output appended to the
/// node's log. The supervisor runs it (in its own process group).
pub fn agent_command(dir: &ClusterDir, home: &Path, node: &NodePlan) -> Result<Command> {
    let log = log_file(dir, &node.name)?;
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", node.netns))
        .arg(exe)
        .args(agent_args(&dir.name, &node.name))
        .env("KINET_HOME", home)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// Whether `argv` is the agent of `node` in cluster `name`.
pub fn is_agent_cmdline(argv: &[String], name: &str, node: &str) -> bool {
    is_kinet_cmdline(argv, &agent_args(name, node))
}

/// Whether `pid` is alive and is that agent (a zombie has no cmdline).
pub fn is_agent(pid: u32, name: &str, node: &str) -> bool {
    is_kinet(pid, &agent_args(name, node))
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The PID of the node's running agent, if any.
pub fn running(dir: &ClusterDir, node: &str) -> Option<u32> {
    read_pid(&dir.agent_pid_file(node)).filter(|pid| is_agent(*pid, &dir.name, node))
}

/// The PID of the node's running supervisor, if any.
pub fn supervisor(dir: &ClusterDir, node: &str) -> Option<u32> {
    read_pid(&dir.supervisor_pid_file(node))
        .filter(|pid| is_kinet(*pid, &supervisor_args(&dir.name, node)))
}

/// Stops the node's supervisor (which stops its agent) and then the agent, should it have
/// outlived its supervisor, and removes both PID files. Returns the agent PID it stopped.
pub fn stop(dir: &ClusterDir, node: &str) -> Result<Option<u32>> {
    let agent = running(dir, node);
    if let Some(pid) = read_pid(&dir.supervisor_pid_file(node)) {
        stop_kinet(
            pid,
            &supervisor_args(&dir.name, node),
            SUPERVISOR_STOP_GRACE,
        )?;
    }
    if let Some(pid) = running(dir, node) {
        stop_kinet(pid, &agent_args(&dir.name, node), STOP_GRACE)?;
    }
    for file in [dir.supervisor_pid_file(node), dir.agent_pid_file(node)] {
        match fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
            _ => {}
        }
    }
    Ok(agent)
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
        fs::write(dir.supervisor_pid_file("c-worker"), format!("{pid}\n")).unwrap();
        assert_eq!(running(&dir, "c-worker"), None);
        assert_eq!(supervisor(&dir, "c-worker"), None);
        assert_eq!(stop(&dir, "c-worker").unwrap(), None);
        assert!(child.try_wait().unwrap().is_none(), "sleep was signalled");
        assert!(!dir.agent_pid_file("c-worker").exists());
        assert!(!dir.supervisor_pid_file("c-worker").exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
