//! The writer thread: group commit of conditional writes.
//!
//! It takes the first queued request and everything else already waiting (up to a cap, one write
//! per key), runs each closure against the cache, commits the resulting compare-and-swap ops
//! together, waits until the feeder has brought the cache to their revisions, and only then
//! answers each caller. It also runs the periodic compaction.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::{Duration, Instant};

use kinet_types::ApiError;
use tokio::sync::oneshot;

use crate::backend::{Backend, Outcome};
use crate::batch::{decide, finish, Decided, WriteFn};
use crate::model::{Stored, WriteOutcome};
use crate::watch::Hub;

/// How long a committed write waits for the cache to show it before it is answered anyway.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// The readable state: the cache, at revision `rv`.
pub(crate) struct State {
    pub objects: BTreeMap<String, Arc<Stored>>,
    pub rv: u64,
}

/// Everything the store's handles and its two threads share.
pub(crate) struct Shared {
    pub state: RwLock<State>,
    pub hub: Mutex<Hub>,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    /// The highest revision this store's own writes were committed at.
    pub committed: AtomicU64,
    /// The hub's sizes, to rebuild it after a relist.
    pub history: usize,
    pub watch_buffer: usize,
    /// The cache's revision, signalled whenever the feeder applies changes.
    progress: Mutex<u64>,
    progressed: Condvar,
}

impl Shared {
    pub(crate) fn new(state: State, history: usize, watch_buffer: usize) -> Shared {
        let rv = state.rv;
        Shared {
            state: RwLock::new(state),
            hub: Mutex::new(Hub::new(rv, history, watch_buffer)),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            committed: AtomicU64::new(rv),
            history,
            watch_buffer,
            progress: Mutex::new(rv),
            progressed: Condvar::new(),
        }
    }

    // A panic elsewhere must not wedge the store: the guarded data is only ever replaced whole.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The feeder brought the cache to `rv`.
    pub(crate) fn applied(&self, rv: u64) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = rv;
        self.progressed.notify_all();
    }

    /// Waits until the cache is at `rv` or later; false on timeout.
    pub(crate) fn wait_applied(&self, rv: u64, timeout: Duration) -> bool {
        let guard = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .progressed
            .wait_timeout_while(guard, timeout, |at| *at < rv)
            .unwrap_or_else(PoisonError::into_inner);
        *guard >= rv
    }
}

/// One queued request to the writer thread.
pub(crate) enum Request {
    Write {
        key: String,
        f: WriteFn,
        reply: oneshot::Sender<Result<WriteOutcome, ApiError>>,
    },
    /// A health probe, answered after the batch it arrived with.
    Probe(oneshot::Sender<Result<(), String>>),
    /// Compacts the history at and before a revision.
    Compact(u64, oneshot::Sender<Result<(), String>>),
}

/// The writer loop; returns (closing the backend) when every sender is gone.
pub(crate) fn run(
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    max_batch: usize,
    compaction_interval: Duration,
) {
    let mut writer = Writer {
        backend,
        shared,
        commit_error: None,
    };
    let mut deferred = VecDeque::new();
    let mut compactor = Compactor {
        next: Instant::now() + compaction_interval,
        interval: compaction_interval,
        last_rv: 0,
    };
    loop {
        if Instant::now() >= compactor.next {
            compactor.tick(&writer);
        }
        let first = match deferred.pop_front() {
            Some(r) => r,
            None => match rx.recv_timeout(compactor.next.saturating_duration_since(Instant::now()))
            {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut queued: VecDeque<Request> = std::mem::take(&mut deferred);
        queued.push_front(first);
        while queued.len() < max_batch.max(1) {
            match rx.try_recv() {
                Ok(r) => queued.push_back(r),
                Err(_) => break,
            }
        }
        // One write per key per batch: a second one needs the first one's revision.
        let mut keys = HashSet::new();
        let mut batch = Vec::with_capacity(queued.len());
        for r in queued {
            match r {
                Request::Write { ref key, .. } if !keys.insert(key.clone()) => {
                    deferred.push_back(r)
                }
                r => batch.push(r),
            }
        }
        writer.batch(batch);
    }
    writer.backend.close();
}

struct Writer {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    /// Why the last commit failed, until one succeeds: the probe reports it.
    commit_error: Option<String>,
}

/// A write waiting for its op's outcome.
struct Waiting {
    key: String,
    value: serde_json::Value,
    kind: crate::model::EventType,
    reply: oneshot::Sender<Result<WriteOutcome, ApiError>>,
}

impl Writer {
    fn batch(&mut self, requests: Vec<Request>) {
        let shared = &*self.shared;
        let base_rv = shared.read().rv;
        let mut answers = Vec::with_capacity(requests.len());
        let mut ops = Vec::new();
        let mut waiting = Vec::new();
        let mut others = Vec::new();
        for r in requests {
            match r {
                Request::Write { key, f, reply } => {
                    let current = shared.read().objects.get(&key).cloned();
                    match decide(&key, current.as_deref(), base_rv, f) {
                        Decided::Answer(a) => answers.push((reply, a)),
                        Decided::Write { op, value, kind } => {
                            ops.push(op);
                            waiting.push(Waiting {
                                key,
                                value,
                                kind,
                                reply,
                            });
                        }
                    }
                }
                other => others.push(other),
            }
        }
        if !ops.is_empty() {
            match self.backend.commit(&ops) {
                Ok(outcomes) => {
                    self.commit_error = None;
                    self.record(&outcomes);
                    for (w, outcome) in waiting.into_iter().zip(outcomes) {
                        answers.push((w.reply, finish(&w.key, w.value, w.kind, outcome)));
                    }
                }
                Err(e) => {
                    self.commit_error = Some(format!("the last commit failed: {e}"));
                    let err = ApiError::internal(format!("storage commit failed: {e}"));
                    answers.extend(waiting.into_iter().map(|w| (w.reply, Err(err.clone()))));
                }
            }
        }
        for (reply, answer) in answers {
            // The caller may have gone away; the write stands regardless.
            let _ = reply.send(answer);
        }
        for r in others {
            match r {
                Request::Probe(reply) => {
                    let _ = reply.send(self.probe());
                }
                Request::Compact(rev, reply) => {
                    let _ = reply.send(self.compact(rev));
                }
                Request::Write { .. } => unreachable!("writes were taken above"),
            }
        }
    }

    /// Counts a commit and waits for the cache to show it, so the caller reads its own write.
    fn record(&self, outcomes: &[Outcome]) {
        let shared = &*self.shared;
        let revs = outcomes.iter().filter_map(|o| match o {
            Outcome::Done(rev) => Some(*rev),
            Outcome::Conflict => None,
        });
        let (n, max) = revs.fold((0, 0), |(n, max), rev| (n + 1, rev.max(max)));
        if n == 0 {
            return;
        }
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared.writes.fetch_add(n, Ordering::Relaxed);
        shared.committed.fetch_max(max, Ordering::Relaxed);
        if !shared.wait_applied(max, CACHE_WAIT) {
            tracing::warn!(
                rev = max,
                "the watch cache has not shown a committed write after {CACHE_WAIT:?}"
            );
        }
    }

    fn probe(&self) -> Result<(), String> {
        match &self.commit_error {
            Some(e) => Err(e.clone()),
            None => self.backend.probe().map(drop).map_err(|e| e.to_string()),
        }
    }

    fn compact(&self, rev: u64) -> Result<(), String> {
        self.backend.compact(rev).map_err(|e| e.to_string())?;
        self.shared.hub().compact(rev);
        Ok(())
    }
}

/// kube-apiserver's compactor: each tick compacts at the revision seen at the previous tick, so
/// a watch can always resume from anything younger than one interval.
struct Compactor {
    next: Instant,
    interval: Duration,
    last_rv: u64,
}

impl Compactor {
    fn tick(&mut self, writer: &Writer) {
        let now_rv = writer.shared.read().rv;
        if self.last_rv > 0 {
            if let Err(e) = writer.compact(self.last_rv) {
                // Another API server on the same etcd may have compacted further already.
                tracing::debug!(rev = self.last_rv, "compaction: {e}");
            }
        }
        self.last_rv = now_rv;
        self.next = Instant::now() + self.interval;
    }
}
