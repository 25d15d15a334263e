//! The storage API the API server calls: reads from memory, writes through the writer thread.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use kinet_types::ApiError;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::feed;
use crate::model::{Mutation, Options, Stats, Stored, WriteOutcome};
use crate::sqlite::SqliteBackend;
use crate::watch::Watch;
use crate::writer::{self, Request, Shared, State};
use crate::{EtcdConfig, StoreError};

/// A handle to the store; cheap to clone. The writer thread stops (after finishing queued writes)
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<mpsc::Sender<Request>>,
    /// Asked directly for its revision by reads (see [`Store::sync`]), not through the writer.
    /// Weak: the writer thread holds it, and drops it there (an etcd backend's runtime cannot be
    /// dropped on an async thread).
    backend: Weak<dyn Backend>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    feeder: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        // A write closure holding the last handle is dropped on the writer thread itself: then
        // both threads end on their own once that batch is done.
        let on_writer = self
            .writer
            .as_ref()
            .is_some_and(|h| h.thread().id() == thread::current().id());
        if !on_writer {
            // The writer closes the backend when it ends, which ends the feeder.
            for handle in [self.writer.take(), self.feeder.take()]
                .into_iter()
                .flatten()
            {
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

/// How long a consistent read waits for the cache (kube-apiserver's watch cache waits 3 s).
const SYNC_WAIT: Duration = Duration::from_secs(3);

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

    /// Connects to an etcd cluster and serves what it holds under `/registry/`.
    pub fn etcd(config: &EtcdConfig, opts: Options) -> Result<Store, StoreError> {
        #[cfg(feature = "etcd")]
        return Store::with_backend(crate::EtcdBackend::connect(config)?, opts);
        #[cfg(not(feature = "etcd"))]
        {
            let _ = (config, opts);
            Err(StoreError::Backend(
                "this kinet was built without etcd support (cargo feature `etcd`)".into(),
            ))
        }
    }

    /// Puts the cache and watch layer in front of any durable backend: loads a snapshot, then
    /// follows the backend's changes from its revision.
    pub fn with_backend(backend: impl Backend, opts: Options) -> Result<Store, StoreError> {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        let loaded = backend.load_all()?;
        let changes = backend.watch(loaded.rev)?;
        let state = State {
            objects: feed::objects(loaded.rows)?,
            rv: loaded.rev,
        };
        let shared = Arc::new(Shared::new(state, opts.history, opts.watch_buffer));
        let feeder = {
            let (backend, shared) = (Arc::clone(&backend), Arc::clone(&shared));
            thread::Builder::new()
                .name("kinet-store-feed".into())
                .spawn(move || feed::run(backend, shared, changes))?
        };
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let weak_backend = Arc::downgrade(&backend);
        let writer = thread::Builder::new()
            .name("kinet-store-writer".into())
            .spawn(move || {
                writer::run(
                    backend,
                    thread_shared,
                    rx,
                    opts.max_batch,
                    opts.compaction_interval,
                )
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                backend: weak_backend,
                shared,
                writer: Some(writer),
                feeder: Some(feeder),
            }),
        })
    }

    /// Read-modify-write of one key, serialised with every other write.
    ///
    /// `f` sees the current value (including writes earlier in the same uncommitted batch) and
    /// decides; its `ApiError` is returned unchanged and writes nothing. The change is committed
    /// as a compare-and-swap on the key's revision and put values get `metadata.resourceVersion`
    /// set to the new revision. When another API server changed the key first, the answer is
    /// 409 Conflict. Returns once the change is durable and the cache shows it. `f` runs on the writer thread: keep it short and never block
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
        self.ask(Request::Probe).await
    }

    /// Sends the writer thread a request and waits for its answer.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
    ) -> Result<T, String> {
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or("storage is shut down")?;
        tx.send(request(reply))
            .map_err(|_| "the storage writer thread has stopped")?;
        rx.await
            .map_err(|_| "the storage writer thread has stopped")?
    }

    /// Waits until the cache shows every change storage held when called: the barrier of a
    /// consistent read from cache (as kube-apiserver's), for what another API server on the same
    /// etcd has just written. Free when this server is storage's only writer (SQLite).
    ///
    /// The revision is read on a blocking thread of its own, not queued behind the writer's
    /// batches, so reads neither wait for writes nor hold them up. A failed commit of this
    /// server's own (the health probe's concern) does not refuse them.
    pub async fn sync(&self) -> Result<(), ApiError> {
        let backend = self.inner.backend.upgrade().ok_or_else(closed)?;
        if !backend.shared() {
            return Ok(());
        }
        let shared = self.inner.shared.clone();
        let barrier = tokio::task::spawn_blocking(move || {
            let rev = backend.probe().map_err(|e| e.to_string())?;
            match shared.wait_applied(rev, SYNC_WAIT) {
                true => Ok(()),
                false => Err(format!(
                    "the watch cache has not reached resourceVersion {rev}"
                )),
            }
        });
        match barrier.await {
            Ok(shown) => shown.map_err(ApiError::service_unavailable),
            Err(e) => Err(ApiError::service_unavailable(e.to_string())),
        }
    }

    /// The watch cache's health check: it has published every committed change, so a watch
    /// from the current resourceVersion misses nothing.
    pub fn watch_cache_synced(&self) -> Result<(), String> {
        // The writer updates the state while holding the hub, so both are read consistently.
        let committed = self.inner.shared.committed.load(Ordering::Relaxed);
        match self.inner.shared.hub().rv() {
            rv if rv >= committed => Ok(()),
            rv => Err(format!(
                "the watch cache is at resourceVersion {rv}, this server's writes at {committed}"
            )),
        }
    }

    /// Compacts the history at and before `rev`, in the backend and in the watch cache: a
    /// watch from an older resourceVersion then gets 410 Expired. (It also runs on its own
    /// every [`Options::compaction_interval`].)
    pub async fn compact(&self, rev: u64) -> Result<(), String> {
        self.ask(|reply| Request::Compact(rev, reply)).await
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
