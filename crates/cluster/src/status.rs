//! `kinet status`, `kinet kubeconfig` and `kinet node exec`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kinet_pki::Pki;

use crate::nodes;
use crate::probe::Probe;
use crate::process::running_pid;
use crate::state::{self, absolute_home, ClusterDir, ClusterInfo};
use crate::supervisor::{agent_status, AgentStatus, Record};

/// One line of `kinet status`: a cluster under the state root.
#[derive(Debug)]
pub struct ClusterSummary {
    /// The folder's name (the cluster's name unless cluster.json says otherwise).
    pub name: String,
    pub running: bool,
    /// The recorded settings, or why they cannot be read (one unreadable cluster.json
    /// should not hide the others).
    pub info: std::result::Result<ClusterInfo, String>,
}

/// Every cluster under the state root (`home`, for the "none under" message).
pub fn list() -> Result<(PathBuf, Vec<ClusterSummary>)> {
    let home = absolute_home()?;
    let clusters = state::list_clusters(&home)?
        .into_iter()
        .map(|dir| ClusterSummary {
            running: running_pid(&dir, 0).is_some(),
            info: dir
                .load_info()
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            name: dir.name,
        })
        .collect();
    Ok((home, clusters))
}

/// `kinet status --name N`: one cluster in detail.
#[derive(Debug)]
pub struct ClusterStatus {
    pub info: ClusterInfo,
    /// Gateway and host link of the underlay, when the cluster has nodes.
    pub underlay: Option<UnderlayStatus>,
    pub kubeconfig: PathBuf,
    /// The control plane's PID while it runs.
    pub control_plane: Option<u32>,
    /// The other API servers of `--api-servers`, each with its PID while it runs.
    pub other_servers: Vec<(crate::apiservers::ApiServer, Option<u32>)>,
    /// The readiness probe's answer, when the control plane runs.
    pub ready: Option<Readiness>,
    /// Objects the API server took out of the store at start because they did not decode
    /// into their schema (each reported by a Warning event too).
    pub quarantined: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct UnderlayStatus {
    pub gateway: std::net::Ipv4Addr,
    pub host_link: String,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug)]
pub struct NodeStatus {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    /// The agent: running, restarting or failed, its PID and restarts, and its last error.
    pub agent: AgentStatus,
}

/// What `/readyz` said.
#[derive(Debug)]
pub enum Readiness {
    Code(u16),
    Unreachable(String),
}

/// One cluster's settings, processes and API readiness.
pub async fn describe(name: &str) -> Result<ClusterStatus> {
    let dir = existing(&absolute_home()?, name)?;
    let info = dir.load_info()?;
    let underlay = info.underlay.map(|cidr| {
        let plan = nodes::Plan::new(&info.name, cidr, info.nodes);
        UnderlayStatus {
            gateway: plan.underlay.gateway,
            host_link: plan.host_link.clone(),
            nodes: plan
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    ip: n.ip,
                    agent: agent_status(
                        Record::load(&dir, &n.name),
                        nodes::agents::running(&dir, &n.name),
                        nodes::agents::supervisor(&dir, &n.name).is_some(),
                    ),
                })
                .collect(),
        }
    });
    let control_plane = running_pid(&dir, 0);
    let ready = match control_plane {
        Some(_) => {
            let pki = Pki::load(&dir.pki())?;
            let probe = Probe::new(
                &pki.ca_cert_pem,
                info.api_servers()[0].loopback,
                dir.read_token()?,
            )?;
            Some(match probe.readyz().await {
                Ok(code) => Readiness::Code(code),
                Err(e) => Readiness::Unreachable(format!("{e:#}")),
            })
        }
        None => None,
    };
    let quarantined = std::fs::read_dir(dir.data().join(kinet_apiserver::repair::QUARANTINE))
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    let other_servers = info
        .api_servers()
        .into_iter()
        .skip(1)
        .map(|server| (server, running_pid(&dir, server.index)))
        .collect();
    Ok(ClusterStatus {
        info,
        underlay,
        kubeconfig: dir.kubeconfig(),
        control_plane,
        other_servers,
        ready,
        quarantined,
    })
}

/// `kinet node exec`: runs `command` in the node's network namespace (through `nsenter`,
/// like `ip netns exec`) and returns its exit code.
pub fn node_exec(name: &str, node: &str, command: &[String]) -> Result<i32> {
    let dir = existing(&absolute_home()?, name)?;
    let info = dir.load_info()?;
    let plan = nodes::recorded_plan(&info);
    let prefixed = format!("{name}-{node}");
    let Some(n) = plan.node(node).or_else(|| plan.node(&prefixed)) else {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "cluster \"{name}\" has no node {node:?} (nodes: {})",
            names.join(", ")
        );
    };
    if !kinet_netns::NetNs::exists(&n.netns) {
        bail!(
            "node {} has no network namespace {} (is the cluster up?)",
            n.name,
            n.netns
        );
    }
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", n.netns))
        .args(command)
        .status()
        .context("running nsenter")?;
    Ok(status.code().unwrap_or(1))
}

/// The path of a cluster's admin kubeconfig.
pub fn kubeconfig(name: &str) -> Result<PathBuf> {
    Ok(existing(&absolute_home()?, name)?.kubeconfig())
}

fn existing(home: &std::path::Path, name: &str) -> Result<ClusterDir> {
    state::validate_name(name)?;
    let dir = ClusterDir::new(home, name);
    if !dir.exists() {
        bail!("no cluster named \"{name}\" under {}", home.display());
    }
    Ok(dir)
}
