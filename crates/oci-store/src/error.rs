//! The store's errors. Their `Display` is what `kubectl describe` shows after
//! `Failed to pull image "…": `, worded as containerd words its own.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse as Kubernetes parses image names.
    #[error("couldn't parse image name {image:?}: {reason}")]
    InvalidReference { image: String, reason: String },
    /// The registry refused or failed the pull (`context` says which step).
    #[error("failed to pull and unpack image {image:?}: {context}: {message}")]
    Registry {
        image: String,
        context: String,
        message: String,
    },
    /// No image of that name or id is in the store.
    #[error("image {0:?} not found")]
    NotFound(String),
    /// `rm` of an image a container still uses.
    #[error("image {image:?} is in use by {holders}")]
    InUse { image: String, holders: String },
    /// Content whose digest is not the one its descriptor names.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    /// A manifest, index or config that cannot be used.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A tarball that is neither a docker-archive nor an OCI layout, or is incomplete.
    #[error("{path}: {message}")]
    Archive { path: PathBuf, message: String },
    /// A layer that could not be applied.
    #[error("applying layer {digest}: {message}")]
    Layer { digest: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
