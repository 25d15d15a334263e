use std::io;
use std::path::PathBuf;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening root directory {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The layer stream is unreadable: bad compression, a malformed tar header, a short read.
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    /// Applying one entry failed; `path` is the entry's path inside the root.
    #[error("{op} {path}: {source}")]
    Entry {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Attaches the operation and the entry's path to an I/O error.
pub(crate) trait Context<T> {
    fn at(self, op: &'static str, path: &std::path::Path) -> Result<T, Error>;
}

impl<T, E: Into<io::Error>> Context<T> for Result<T, E> {
    fn at(self, op: &'static str, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|e| Error::Entry {
            op,
            path: path.to_path_buf(),
            source: e.into(),
        })
    }
}
