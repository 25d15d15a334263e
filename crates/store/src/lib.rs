//! Durable object storage (SQLite in WAL mode) with group commit and a watch cache.
//!
//! Layers, outermost first:
//! - [`Store`]: the API server's storage API. Reads are served from an in-memory map; writes are
//!   read-modify-write closures queued to one writer thread.
//! - `writer`/`batch`: group commit. One durable transaction per batch of queued writes, each
//!   change getting its own global resourceVersion.
//! - [`Watch`]: a bounded event history plus live broadcast, so watches resume from an rv.
//! - [`Backend`]: the durable boundary; [`SqliteBackend`] implements it.

mod backend;
mod batch;
mod error;
mod model;
mod sqlite;
mod store;
mod watch;
mod writer;

pub use backend::{Backend, Batch, Change, Loaded, Row};
pub use error::StoreError;
pub use model::{Event, EventType, Mutation, Options, Stats, Stored, WriteOutcome};
pub use sqlite::SqliteBackend;
pub use store::Store;
pub use watch::Watch;
