//! The durable storage boundary. The cache and watch layer only needs to load everything once
//! and commit batches atomically, so another backend (etcd, memory) can slot in here.

use bytes::Bytes;

use crate::StoreError;

/// One persisted object row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub rv: u64,
    pub json: Bytes,
}

/// Everything a backend holds, read once at open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub rows: Vec<Row>,
    /// The last committed global rv (at least the largest row rv; deletes may have advanced it).
    pub rv: u64,
}

/// One change inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Row),
    Delete(String),
}

/// Changes committed together in one durable transaction, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// The global rv after the batch; persisted even if the last change was a delete.
    pub rv: u64,
}

/// Durable storage. Used from the single writer thread only, hence `&mut self` and `Send`.
pub trait Backend: Send + 'static {
    /// Reads every stored row and the committed global rv.
    fn load_all(&mut self) -> Result<Loaded, StoreError>;
    /// Applies the batch atomically and durably; returns only once it survives a crash.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;
    /// A cheap round trip to the storage (a health check); fails when it cannot answer.
    fn probe(&mut self) -> Result<(), StoreError>;
}
