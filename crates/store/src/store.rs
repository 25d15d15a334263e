//! The storage API the API server calls: reads from memory, writes through the writer thread.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};

use kinet_types::ApiError;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::model::{Mutation, Options, Stats, Stored, WriteOutcome};
use crate::sqlite::SqliteBackend;
use crate::watch::{Hub, Watch};
use crate::writer::{self, Request, Shared, State};
use crate::StoreError;

/// A handle to the store; cheap to clone. The writer thread stops (after finishing queued writes)
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<mpsc::Sender<Request>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(handle) = self.thread.take() {
            // A write closure holding the last handle is dropped on the writer thread itself.
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish()
    }
}

fn closed() -> ApiError {
    ApiError::service_unavailable("storage is shut down")
}

impl Store {
    /// Opens (or creates) the SQLite database at `path` with default options.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, Options::default())
    }

    /// Opens (or creates) the SQLite database at `path`. All rows are loaded into memory and the
    /// resourceVersion carries on from the last commit.
    pub fn open_with(path: &Path, opts: Options) -> Result<Store, StoreError> {
        Store::with_backend(SqliteBackend::open(path)?, opts)
    }

    /// Puts the cache and watch layer in front of any durable backend.
    pub fn with_backend(mut backend: impl Backend, opts: Options) -> Result<Store, StoreError> {
        let loaded = backend.load_all()?;
        let mut objects = BTreeMap::new();
        for row in loaded.rows {
            let value: Value =
                serde_json::from_slice(&row.json).map_err(|source| StoreError::Corrupt {
                    key: row.key.clone(),
                    source,
                })?;
            objects.insert(
                row.key,
                Arc::new(Stored {
                    value,
                    json: row.json,
                    rv: row.rv,
                }),
            );
        }
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                objects,
                rv: loaded.rv,
            }),
            hub: Mutex::new(Hub::new(loaded.rv, opts.history, opts.watch_buffer)),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let max_batch = opts.max_batch;
        let thread = thread::Builder::new()
            .name("kinet-store-writer".into())
            .spawn(move || writer::run(Box::new(backend), thread_shared, rx, max_batch))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                shared,
                thread: Some(thread),
            }),
        })
    }

    /// Read-modify-write of one key, serialised with every other write.
    ///
    /// `f` sees the current value (including writes earlier in the same uncommitted batch) and
    /// decides; its `ApiError` is returned unchanged and writes nothing. Put values get
    /// `metadata.resourceVersion` set to the new global rv. Returns once the change is durable
    /// and its event published. `f` runs on the writer thread: keep it short and never block
    /// on another write from inside it. Dropping the returned future does not cancel the write.
    pub async fn write<F>(&self, key: &str, f: F) -> Result<WriteOutcome, ApiError>
    where
        F: FnOnce(Option<&Value>) -> Result<Mutation, ApiError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or_else(closed)?;
        tx.send(Request::Write {
            key: key.to_string(),
            f: Box::new(f),
            reply,
        })
        .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// The storage health check: the writer thread is alive, its last commit succeeded and the
    /// backend answers a query. Queued behind pending writes, so a wedged writer never answers:
    /// callers bound the wait.
    pub async fn probe(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or("storage is shut down")?;
        tx.send(Request::Probe(reply))
            .map_err(|_| "the storage writer thread has stopped")?;
        rx.await
            .map_err(|_| "the storage writer thread has stopped")?
    }

    /// The watch cache's health check: it has published every committed change, so a watch
    /// from the current resourceVersion misses nothing.
    pub fn watch_cache_synced(&self) -> Result<(), String> {
        // The writer updates the state while holding the hub, so both are read consistently.
        let hub = self.inner.shared.hub();
        let committed = self.inner.shared.read().rv;
        match hub.rv() {
            rv if rv == committed => Ok(()),
            rv => Err(format!(
                "the watch cache is at resourceVersion {rv}, the store at {committed}"
            )),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.inner.shared.read().objects.get(key).cloned()
    }

    /// All objects whose key starts with `prefix`, in key order, and the rv the snapshot is
    /// consistent at.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Stored>>, u64) {
        let (items, rv, _) = self.list_page(prefix, None, 0);
        (items, rv)
    }

    /// Every object under `prefix` with its key, in key order.
    pub fn entries(&self, prefix: &str) -> Vec<(String, Arc<Stored>)> {
        let state = self.inner.shared.read();
        state
            .objects
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// At most `limit` objects under `prefix` with keys after `after` (0 = no limit), the
    /// snapshot rv, and whether more remain.
    pub fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<Stored>>, u64, bool) {
        let state = self.inner.shared.read();
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut iter = state
            .objects
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| Arc::clone(v));
        let items: Vec<_> = iter.by_ref().take(limit).collect();
        let more = iter.next().is_some();
        (items, state.rv, more)
    }

    /// Events for keys under `prefix`. `None`: only future events. `Some(rv)`: every event after
    /// `rv` still in history, then live ones; 410 Expired if history does not reach back to `rv`.
    pub fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Watch, ApiError> {
        self.inner.shared.hub().watch(prefix, from)
    }

    /// The oldest rv a watch can currently resume from.
    pub fn oldest_rv(&self) -> u64 {
        self.inner.shared.hub().oldest()
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.shared.read().rv
    }

    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let (objects, rv) = {
            let state = shared.read();
            (state.objects.len() as u64, state.rv)
        };
        Stats {
            commits: shared.commits.load(Ordering::Relaxed),
            writes: shared.writes.load(Ordering::Relaxed),
            objects,
            rv,
        }
    }
}
