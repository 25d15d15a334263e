//! The node agent's HTTPS API, the part of the kubelet's API the API server calls:
//! container logs, exec, attach and port-forward.
//!
//! - [`route`]: kubelet paths to requests (pure).
//! - [`logs`]: `containerLogs` options, tail/limit/since over a log file, and following it.
//! - attach: the container's own output (from its log), stdin (a FIFO its shim reads) and
//!   terminal.
//! - [`exec`]: commands run in the pod's namespaces with `nsenter`, over pipes or a terminal.
//! - [`portforward`]: connections to `127.0.0.1:port` inside the pod's network namespace.
//! - [`tls`]: a self-signed serving certificate, and client certificates checked against the
//!   cluster CA and the API server's name ([`API_SERVER_CLIENT_CN`]).
//! - [`serve`]: the HTTPS server tying them together.
//!
//! The agent implements [`Pods`]: what it knows about the containers it runs. Then:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn agent(ca_pem: &str, node_ip: &str, pods: Arc<dyn kinet_node_api::Pods>) -> kinet_node_api::Result<()> {
//! let tls = kinet_node_api::server_config(ca_pem, &[node_ip.to_string()])?;
//! let listener = tokio::net::TcpListener::bind(("0.0.0.0", kinet_node_api::DEFAULT_PORT)).await?;
//! kinet_node_api::serve(listener, tls, pods, std::future::pending()).await
//! # }
//! ```
//!
//! and publish the port in the Node's `status.daemonEndpoints.kubeletEndpoint.Port`, with the
//! node's address as an `InternalIP` in `status.addresses`: that is where the API server dials.

mod attach;
pub mod exec;
pub mod logs;
pub mod portforward;
mod pty;
pub mod route;
mod server;
pub mod tls;

use std::path::PathBuf;

pub use server::{serve, ChannelBody};
pub use tls::{client_config, server_config, API_SERVER_CLIENT_CN};

/// The kubelet's port, where the API server finds the agent by default.
pub const DEFAULT_PORT: u16 = kinet_types::wellknown::KUBELET_PORT;

/// What the agent knows about its pods, for streaming.
pub trait Pods: Send + Sync + 'static {
    /// The container a request is about; `container: None` means the pod's first container.
    /// `Err(message)` answers 404 with that message.
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerInfo, String>;
}

/// One container of a pod, as the agent runs it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    /// PID of the pod's pause process (holds the pod's net, uts and ipc namespaces).
    /// None: the sandbox is not running.
    pub sandbox_pid: Option<u32>,
    /// Host PID of the running container's first process: exec enters its namespaces.
    pub pid: Option<u32>,
    /// Whether the container is running now (exec needs it; a follow ends when it stops).
    pub running: bool,
    /// Environment of the container (exec gets it, as in a real runtime), and its working dir.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Log file of the current instance, and of the previous one (after a restart), if any.
    pub log: Option<PathBuf>,
    pub previous_log: Option<PathBuf>,
    /// The FIFO the container's stdin is read from, if its spec has `stdin: true`.
    pub stdin: Option<PathBuf>,
    /// With `tty: true`: the file holding the path of the container's terminal device.
    pub tty: Option<PathBuf>,
}

/// What can go wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Pem(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
