//! Why a control loop stopped; its supervisor logs it and restarts the loop with back-off.

/// A control loop's end.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Watch(#[from] kube::runtime::watcher::Error),
    #[error("a task of the loop failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the loop's cache: {0}")]
    Cache(#[from] kube::runtime::reflector::store::WriterDropped),
    /// The loop's settings do not hold (a cluster CIDR that does not parse, say).
    #[error("settings: {0}")]
    Settings(#[from] kinet_ipam::Error),
    /// A stream the loop lives on ended; it never should.
    #[error("{0} ended")]
    Ended(&'static str),
}
