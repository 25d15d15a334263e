//! Cluster PKI and kubeconfig: CA, serving and client certificates (rcgen), kubeconfig files.
//!
//! One self-signed CA per cluster signs the API server's serving certificate and every
//! client certificate (admin, and nodes through CSRs: [`csr`]). Keys are ECDSA P-256.
//! [`token`]: join tokens that pin the CA.

mod certs;
pub mod csr;
mod files;
mod kubeconfig;
pub mod token;

pub use files::{write_file, FILE_NAMES};
pub use kubeconfig::{context_name, kubeconfig, Credentials};

/// The cluster's certificates and keys, all PEM.
#[derive(Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

// Keys stay out of logs.
impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// What can go wrong creating, saving or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
    #[error("invalid certificate signing request: {0}")]
    BadRequest(String),
    #[error(
        "a client certificate carries at most one group (rcgen writes one O attribute), got {0}"
    )]
    TooManyGroups(usize),
}

/// Who the admin client certificate authenticates as.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The group that the API server authorises for everything.
pub const ADMIN_GROUP: &str = "system:masters";
/// Who the API server is to node agents (kubeadm's name for the kubelet client certificate);
/// agents accept exec, attach, logs and port-forward only from this name.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// The SANs a cluster's serving certificate should carry: loopback, the in-cluster
/// names of the `kubernetes` service, and its ClusterIP.
pub fn default_server_sans(service_ip: &str) -> Vec<String> {
    [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        service_ip,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
