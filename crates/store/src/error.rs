//! Errors from opening or committing to the durable backend.
//!
//! Callers of [`crate::Store::write`] never see these directly: a failed commit is reported as an
//! `ApiError::internal` so the API server can answer it like any other request failure.

/// Why the backend could not open, load, commit or watch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[cfg(feature = "etcd")]
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A stored row does not hold valid JSON; the database was written by something else.
    #[error("stored object {key:?} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The history a watch asked for is gone (etcd's `ErrCompacted`).
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted { requested: u64, compacted: u64 },
    /// The backend was closed.
    #[error("the storage backend is closed")]
    Closed,
    /// Any other backend failure.
    #[error("backend: {0}")]
    Backend(String),
}
