//! Durable object storage (SQLite in WAL mode) with group commit and a watch cache.
//!
//! Layers, outermost first:
//! - [`Store`]: the API server's storage API. Reads are served from an in-memory map; writes are
//!   read-modify-write closures queued to one writer thread.
//! - `writer`/`batch`: group commit. Each batch of queued writes (one per key) becomes
//!   compare-and-swap ops on the keys' revisions, committed together; each gets its own revision,
//!   which is its resourceVersion.
//! - `feed`: the only path into the cache. It follows the backend's event stream, so the writes
//!   of every API server on the backend reach the cache and the watchers alike.
//! - [`Watch`]: a bounded event history plus live broadcast, so watches resume from an rv;
//!   compaction moves its horizon (410 Expired).
//! - [`Backend`]: the durable boundary, shaped like etcd v3; [`SqliteBackend`] and (feature
//!   `etcd`) `EtcdBackend` implement it.

mod backend;
mod batch;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod etcd_config;
mod feed;
mod model;
mod sqlite;
mod store;
mod watch;
mod writer;

pub use backend::{Backend, Change, Changes, Loaded, Op, Outcome, Row};
pub use error::StoreError;
#[cfg(feature = "etcd")]
pub use etcd::EtcdBackend;
pub use etcd_config::EtcdConfig;
pub use model::{Event, EventType, Mutation, Options, Stats, Stored, WriteOutcome};
pub use sqlite::SqliteBackend;
pub use store::Store;
pub use watch::Watch;
