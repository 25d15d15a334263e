//! Errors from opening or committing to the durable backend.
//!
//! Callers of [`crate::Store::write`] never see these directly: a failed commit is reported as an
//! `ApiError::internal` so the API server can answer it like any other request failure.

/// Why the backend could not open, load or commit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row does not hold valid JSON; the database was written by something else.
    #[error("stored object {key:?} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Any other backend failure (for backends other than SQLite).
    #[error("backend: {0}")]
    Backend(String),
}
