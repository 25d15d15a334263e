//! The durable storage boundary, shaped like etcd v3's KV and Watch APIs (as kube-apiserver uses
//! them): every write is a single-key compare-and-swap on the key's last revision and gets its own
//! revision, and the cache above learns of committed changes only from the backend's event
//! stream. SQLite ([`crate::SqliteBackend`]) and etcd (`EtcdBackend`) implement it alike.

use bytes::Bytes;

use crate::StoreError;

/// One stored object: its bytes (without `metadata.resourceVersion`) and the revision that last
/// modified it (etcd's `mod_revision`), which becomes its resourceVersion.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub rev: u64,
    pub value: Bytes,
}

/// A consistent snapshot of every stored object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub rows: Vec<Row>,
    /// The revision the snapshot is consistent at (deletes may have moved it past every row).
    pub rev: u64,
}

/// One conditional single-key write, as kube-apiserver's etcd3 store issues them.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Store `value` if the key was last modified at revision `expect` (0: it must not exist).
    Put {
        key: String,
        value: Bytes,
        expect: u64,
    },
    /// Remove the key if it was last modified at revision `expect`.
    Delete { key: String, expect: u64 },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// What became of one [`Op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this revision.
    Done(u64),
    /// The key's revision was not the expected one; nothing was written.
    Conflict,
}

/// One committed change, from the backend's event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub rev: u64,
    pub key: String,
    /// The new value; `None` for a delete.
    pub value: Option<Bytes>,
    /// The value before the change (etcd's `prev_kv`), if it existed.
    pub prev: Option<Bytes>,
}

/// A stream of committed changes in revision order.
pub trait Changes: Send {
    /// Blocks for the next changes. [`StoreError::Closed`] once the backend is closed;
    /// [`StoreError::Compacted`] when the start revision is no longer available.
    fn next(&mut self) -> Result<Vec<Change>, StoreError>;
}

/// Durable storage shared by the store's writer and feeder threads.
pub trait Backend: Send + Sync + 'static {
    /// Reads every stored object at one revision.
    fn load_all(&self) -> Result<Loaded, StoreError>;
    /// Applies each op as its own compare-and-swap; returns once the successful ones are durable.
    /// Ops on distinct keys only, so they may run concurrently.
    fn commit(&self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError>;
    /// Every change after revision `after`, then live ones.
    fn watch(&self, after: u64) -> Result<Box<dyn Changes>, StoreError>;
    /// Forgets the history at and before `rev`.
    fn compact(&self, rev: u64) -> Result<(), StoreError>;
    /// A cheap round trip to the storage (a health check): the revision of its latest commit, by
    /// anyone. Fails when it cannot answer.
    fn probe(&self) -> Result<u64, StoreError>;
    /// Whether other processes (API servers) commit to this storage too: only then can the cache
    /// lag behind what storage holds.
    fn shared(&self) -> bool;
    /// Ends every [`Changes`] stream (the store is shutting down).
    fn close(&self);
}
