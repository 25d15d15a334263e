//! The single writer thread: group commit.
//!
//! It takes the first queued request and everything else already waiting (up to a cap), applies
//! them in order, commits ONE durable transaction, makes the result readable, publishes events,
//! and only then answers each caller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    mpsc, Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use kinet_types::ApiError;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::batch::{apply, WriteFn};
use crate::model::{Stored, WriteOutcome};
use crate::watch::Hub;

/// The readable, committed state.
pub(crate) struct State {
    pub objects: BTreeMap<String, Arc<Stored>>,
    pub rv: u64,
}

/// Everything the store's handles and the writer thread share.
pub(crate) struct Shared {
    pub state: RwLock<State>,
    pub hub: Mutex<Hub>,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

impl Shared {
    // A panic elsewhere must not wedge the store: the guarded data is only ever replaced whole.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
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
}

/// The writer loop; returns when every sender is gone.
pub(crate) fn run(
    mut backend: Box<dyn Backend>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    max_batch: usize,
) {
    // Why the last commit failed, until one succeeds: the probe reports it.
    let mut commit_error: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut queued = vec![first];
        while queued.len() < max_batch.max(1) {
            match rx.try_recv() {
                Ok(r) => queued.push(r),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(queued.len());
        let mut probes = Vec::new();
        let mut requests = Vec::with_capacity(queued.len());
        for r in queued {
            match r {
                Request::Write { key, f, reply } => {
                    replies.push(reply);
                    requests.push((key, f));
                }
                Request::Probe(reply) => probes.push(reply),
            }
        }
        let base_rv = shared.read().rv;
        let applied = apply(|k| shared.read().objects.get(k).cloned(), base_rv, requests);
        let mut results = applied.results;

        if !applied.batch.changes.is_empty() {
            if let Err(e) = backend.commit(&applied.batch) {
                commit_error = Some(format!("the last commit failed: {e}"));
                // Nothing became visible; every request in the batch may have seen uncommitted
                // state, so all of them fail.
                let err = ApiError::internal(format!("storage commit failed: {e}"));
                for r in &mut results {
                    if r.is_ok() {
                        *r = Err(err.clone());
                    }
                }
            } else {
                commit_error = None;
                shared.commits.fetch_add(1, Ordering::Relaxed);
                let n = applied.batch.changes.len() as u64;
                shared.writes.fetch_add(n, Ordering::Relaxed);
                // Hub first, then state: a watch registering concurrently sees both or neither.
                let mut hub = shared.hub();
                {
                    let mut state = shared.write();
                    for (key, value) in applied.overlay {
                        match value {
                            Some(stored) => state.objects.insert(key, stored),
                            None => state.objects.remove(&key),
                        };
                    }
                    state.rv = applied.batch.rv;
                }
                hub.publish(applied.events);
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone away; the write stands regardless.
            let _ = reply.send(result);
        }
        for reply in probes {
            let result = match &commit_error {
                Some(e) => Err(e.clone()),
                None => backend.probe().map_err(|e| e.to_string()),
            };
            let _ = reply.send(result);
        }
    }
}
