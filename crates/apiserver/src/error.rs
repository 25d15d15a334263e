//! Why the API server could not start or keep serving (request errors are `ApiError`s).

use std::net::SocketAddr;
use std::path::PathBuf;

/// A failure of `kinet serve`'s API server outside any one request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Store(#[from] kinet_store::StoreError),
    #[error("the service-account key: {0}")]
    Key(#[from] rcgen::Error),
    #[error("the service-account key or token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0}")]
    Pem(String),
    #[error("loading the kubelet client certificate: {0}")]
    KubeletClient(#[from] kinet_node_api::Error),
    #[error("{step}: {message}")]
    Api { step: String, message: String },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

impl ServeError {
    /// An I/O failure of `op` on `path`, for `map_err`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ServeError {
        let path = path.into();
        move |source| ServeError::Io { op, path, source }
    }

    /// An API error met while `step` ran (bootstrapping, the start-up check).
    pub(crate) fn api(step: impl Into<String>) -> impl FnOnce(kinet_types::ApiError) -> ServeError {
        let step = step.into();
        move |e| ServeError::Api {
            step,
            message: e.message,
        }
    }
}
