//! `kinet supervise --name C --node N`: keeps one node's agent running, as systemd keeps a
//! kubelet running. `up` starts one supervisor per node; `down` stops it, and it stops its
//! agent first.
//!
//! The policy ([`restarts`], [`BACKOFF`]):
//! - an agent that exits, with any code or signal but SIGKILL, is restarted after a back-off
//!   that doubles from 1 s up to 30 s, and starts again from 1 s once an agent ran 60 s;
//! - an agent killed with SIGKILL is left dead and the supervisor ends: that is how a node is
//!   made to fail on purpose (to watch it turn NotReady and its pods move). `kinet up` starts
//!   it again.
//!
//! Every change is written to `agents/<node>.json` ([`Record`]), which `kinet status` shows and
//! `kinet up` watches while it waits.

use std::fmt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kinet_controllers::Backoff;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::nodes::{self, agents};
use crate::state::{self, absolute_home, ClusterDir};

/// Restarts wait 1 s doubling to 30 s; an agent that ran 60 s was healthy, and the next
/// back-off starts again from 1 s.
pub const BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
    reset_after: Duration::from_secs(60),
};
/// Log lines searched for an exit's "last error".
const TAIL_LINES: usize = 30;

/// What the supervisor is doing about its agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    #[default]
    Starting,
    Running,
    /// Exited; waiting out the back-off before the next start.
    Restarting,
    /// Exited and not restarted (killed with SIGKILL, or its supervisor is gone).
    Failed,
    /// Stopped by `kinet down`.
    Stopped,
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Restarting => "restarting",
            AgentState::Failed => "failed",
            AgentState::Stopped => "stopped",
        })
    }
}

/// `agents/<node>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub state: AgentState,
    pub pid: Option<u32>,
    /// Agent exits this supervisor has seen.
    pub exits: u32,
    /// Starts after the first.
    pub restarts: u32,
    /// How the agent last ended: `exit code 1`, `killed by SIGKILL`.
    pub last_exit: Option<String>,
    /// The last lines of the agent's log when it ended.
    pub last_error: Option<String>,
}

impl Record {
    pub fn load(dir: &ClusterDir, node: &str) -> Option<Record> {
        let text = std::fs::read_to_string(dir.agent_record(node)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, dir: &ClusterDir, node: &str) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        Ok(state::write_file(
            &dir.agent_record(node),
            &format!("{json}\n"),
            0o644,
        )?)
    }
}

/// How an agent process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Whether an agent that ended so is started again.
pub fn restarts(exit: Exit) -> bool {
    exit != Exit::Signal(Signal::SIGKILL as i32)
}

/// What explains an exit, from the end of the agent's log: the last error line (`Error: …`
/// as the agent prints its fatal error, or a tracing ERROR), else the last line.
pub fn last_error(tail: &[String]) -> Option<String> {
    tail.iter()
        .rev()
        .find(|l| l.starts_with("Error: ") || l.contains(" ERROR "))
        .or_else(|| tail.last())
        .cloned()
}

/// An agent as `kinet status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: AgentState,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
}

/// What the processes and the record say together: a live agent is running whatever the
/// record says; without a live supervisor nothing will restart it.
pub fn agent_status(
    record: Option<Record>,
    agent_pid: Option<u32>,
    supervisor_alive: bool,
) -> AgentStatus {
    let record = record.unwrap_or_default();
    let state = match (agent_pid, supervisor_alive, record.state) {
        (Some(_), _, _) => AgentState::Running,
        (None, true, AgentState::Running) => AgentState::Restarting,
        (None, true, s) => s,
        (None, false, AgentState::Stopped) => AgentState::Stopped,
        (None, false, _) => AgentState::Failed,
    };
    AgentStatus {
        state,
        pid: agent_pid,
        restarts: record.restarts,
        last_exit: record.last_exit,
        last_error: record.last_error,
    }
}

/// Runs the node's agent until SIGTERM (then stops it), or until it is killed with SIGKILL.
pub async fn run(name: &str, node: &str) -> Result<()> {
    crate::serve::init_logging();
    state::validate_name(name)?;
    let home = absolute_home()?;
    let dir = ClusterDir::new(&home, name);
    let plan = nodes::recorded_plan(&dir.load_info()?);
    let Some(me) = plan.node(node) else {
        bail!("cluster \"{name}\" has no node {node}");
    };
    supervise(&dir, node, || agents::agent_command(&dir, &home, me)).await
}

/// [`run`] for a joined host's agent (`kinet join-supervise --state-dir DIR`).
pub async fn run_joined(state_dir: &Path) -> Result<()> {
    crate::serve::init_logging();
    let joined = crate::join::Joined::load(state_dir)?;
    let dir = joined.dir();
    supervise(&dir, &joined.node, || {
        agents::joined_agent_command(&dir, &joined.node)
    })
    .await
}

/// Keeps the agent `command` starts running, its state recorded in `dir`.
async fn supervise(
    dir: &ClusterDir,
    node: &str,
    command: impl Fn() -> Result<std::process::Command>,
) -> Result<()> {
    crate::serve::ignore_hangup()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut record = Record::default();
    let mut backoff = None;
    let result = loop {
        let mut child = tokio::process::Command::from(command()?)
            .spawn()
            .context("starting the agent")?;
        let pid = child.id().context("the agent has no PID")?;
        state::write_file(&dir.agent_pid_file(node), &format!("{pid}\n"), 0o644)?;
        record.state = AgentState::Running;
        record.pid = Some(pid);
        record.save(dir, node)?;
        let started = Instant::now();
        let status = tokio::select! {
            s = child.wait() => s?,
            _ = term.recv() => break stop_agent(&mut child, pid).await,
        };
        let exit = Exit::from(status);
        record.exits += 1;
        record.pid = None;
        record.last_exit = Some(exit.to_string());
        record.last_error = last_error(&crate::process::log_tail(
            &dir.agent_log(node),
            0,
            TAIL_LINES,
        ));
        remove_if_ours(&dir.agent_pid_file(node), pid);
        if !restarts(exit) {
            tracing::warn!(node, %exit, "agent ended; not restarted (`kinet up` starts it)");
            record.state = AgentState::Failed;
            record.save(dir, node)?;
            remove_if_ours(&dir.supervisor_pid_file(node), std::process::id());
            return Ok(());
        }
        let wait = BACKOFF.next(backoff, started.elapsed());
        backoff = Some(wait);
        tracing::warn!(node, %exit, ?wait, "agent ended; restarting after back-off");
        record.state = AgentState::Restarting;
        record.save(dir, node)?;
        tokio::select! {
            _ = tokio::time::sleep(wait) => record.restarts += 1,
            _ = term.recv() => break Ok(()),
        }
    };
    record.state = AgentState::Stopped;
    if let Some(pid) = record.pid.take() {
        remove_if_ours(&dir.agent_pid_file(node), pid);
    }
    record.save(dir, node)?;
    remove_if_ours(&dir.supervisor_pid_file(node), std::process::id());
    tracing::info!(node, "supervisor stopped");
    result
}

/// SIGTERM to the agent, SIGKILL after its grace period.
async fn stop_agent(child: &mut tokio::process::Child, pid: u32) -> Result<()> {
    let target = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
    let _ = nix::sys::signal::kill(target, Signal::SIGTERM);
    if tokio::time::timeout(agents::STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        child.kill().await?;
    }
    Ok(())
}

/// Removes a PID file that still names `pid` (a newer process may have replaced it).
fn remove_if_ours(path: &Path, pid: u32) {
    let current = std::fs::read_to_string(path).ok();
    if current.as_deref().map(str::trim) == Some(pid.to_string().as_str()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
