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

/// The command lines (after the binary) of one node's agent and of its supervisor: how they
/// are started, and how a PID is recognised as one of them before it is signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentArgs {
    pub agent: Vec<String>,
    pub supervisor: Vec<String>,
}

impl AgentArgs {
    /// A namespaced node of cluster `name`: `kinet agent|supervise --name C --node N`.
    pub fn node(name: &str, node: &str) -> AgentArgs {
        let with = |cmd: &str| {
            [cmd, "--name", name, "--node", node]
                .map(String::from)
                .to_vec()
        };
        AgentArgs {
            agent: with("agent"),
            supervisor: with("supervise"),
        }
    }

    /// A joined host's: `kinet join-agent|join-supervise --state-dir DIR` (DIR absolute).
    pub fn joined(state_dir: &Path) -> AgentArgs {
        let dir = state_dir.display().to_string();
        let with = |cmd: &str| vec![cmd.to_string(), "--state-dir".into(), dir.clone()];
        AgentArgs {
            agent: with("join-agent"),
            supervisor: with("join-supervise"),
        }
    }

    fn agent(&self) -> Vec<&str> {
        self.agent.iter().map(String::as_str).collect()
    }

    fn supervisor(&self) -> Vec<&str> {
        self.supervisor.iter().map(String::as_str).collect()
    }
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
    let args = AgentArgs::node(&dir.name, &node.name);
    spawn_supervisor(dir, &node.name, &args, |cmd| {
        cmd.env("KINET_HOME", home);
    })
}

/// Starts `kinet <args.supervisor>` for `node`, detached, its output on the node's log; `env`
/// adds to its environment.
pub fn spawn_supervisor(
    dir: &ClusterDir,
    node: &str,
    args: &AgentArgs,
    env: impl FnOnce(&mut Command),
) -> Result<Child> {
    fs::create_dir_all(dir.agents())?;
    match fs::remove_file(dir.agent_record(node)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
        _ => {}
    }
    let log = log_file(dir, node)?;
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(&args.supervisor);
    env(&mut cmd);
    let child = cmd
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the agent supervisor of {node}"))?;
    let pid = child.id();
    state::write_file(&dir.supervisor_pid_file(node), &format!("{pid}\n"), 0o644)?;
    Ok(child)
}

/// The agent's command: `nsenter --net=<node netns> kinet agent ...`, output appended to the
/// node's log. The supervisor runs it (in its own process group).
pub fn agent_command(dir: &ClusterDir, home: &Path, node: &NodePlan) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", node.netns))
        .arg(exe)
        .args(AgentArgs::node(&dir.name, &node.name).agent)
        .env("KINET_HOME", home);
    to_log(dir, &node.name, cmd)
}

/// A joined host's agent: `kinet join-agent --state-dir DIR`, in the host's own namespace.
pub fn joined_agent_command(dir: &ClusterDir, node: &str) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the kinet binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(AgentArgs::joined(&dir.root).agent);
    to_log(dir, node, cmd)
}

/// `cmd` run from `/`, stdin closed, its output appended to the node's log.
fn to_log(dir: &ClusterDir, node: &str, mut cmd: Command) -> Result<Command> {
    let log = log_file(dir, node)?;
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// Whether `argv` is the agent of `node` in cluster `name`.
pub fn is_agent_cmdline(argv: &[String], name: &str, node: &str) -> bool {
    is_kinet_cmdline(argv, &AgentArgs::node(name, node).agent())
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The PID of the node's running agent, if any.
pub fn running(dir: &ClusterDir, node: &str) -> Option<u32> {
    running_as(dir, node, &AgentArgs::node(&dir.name, node))
}

/// The PID of the running agent `args` names, if any.
pub fn running_as(dir: &ClusterDir, node: &str, args: &AgentArgs) -> Option<u32> {
    read_pid(&dir.agent_pid_file(node)).filter(|pid| is_kinet(*pid, &args.agent()))
}

/// The PID of the node's running supervisor, if any.
pub fn supervisor(dir: &ClusterDir, node: &str) -> Option<u32> {
    supervisor_as(dir, node, &AgentArgs::node(&dir.name, node))
}

/// The PID of the running supervisor `args` names, if any.
pub fn supervisor_as(dir: &ClusterDir, node: &str, args: &AgentArgs) -> Option<u32> {
    read_pid(&dir.supervisor_pid_file(node)).filter(|pid| is_kinet(*pid, &args.supervisor()))
}

/// Stops the node's supervisor (which stops its agent) and then the agent, should it have
/// outlived its supervisor, and removes both PID files. Returns the agent PID it stopped.
pub fn stop(dir: &ClusterDir, node: &str) -> Result<Option<u32>> {
    stop_as(dir, node, &AgentArgs::node(&dir.name, node))
}

/// [`stop`] for the processes `args` names.
pub fn stop_as(dir: &ClusterDir, node: &str, args: &AgentArgs) -> Result<Option<u32>> {
    let agent = running_as(dir, node, args);
    if let Some(pid) = read_pid(&dir.supervisor_pid_file(node)) {
        stop_kinet(pid, &args.supervisor(), SUPERVISOR_STOP_GRACE)?;
    }
    if let Some(pid) = running_as(dir, node, args) {
        stop_kinet(pid, &args.agent(), STOP_GRACE)?;
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
