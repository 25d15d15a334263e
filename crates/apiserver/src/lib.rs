//! The Kubernetes-compatible API server: HTTPS, authentication, discovery, REST and watch.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the control plane needs to serve one cluster.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The cluster's name, as in `kinet up --name`.
    pub cluster: String,
    /// Where durable state lives (the store is `data_dir/store.db`).
    pub data_dir: PathBuf,
    /// Addresses to serve HTTPS on.
    pub listen: Vec<SocketAddr>,
    /// PEM of the cluster CA; client certificates are verified against it.
    pub ca_cert_pem: String,
    /// PEM of the serving certificate (with SANs for every listen address) and its key.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Bearer tokens accepted, with the user they authenticate.
    pub tokens: Vec<TokenUser>,
}

/// A bearer token and who it authenticates as.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub token: String,
    pub user: String,
    pub groups: Vec<String>,
}

/// Serves until SIGTERM or SIGINT.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("the API server is not built yet")
}
