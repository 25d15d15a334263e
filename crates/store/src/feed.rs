//! The feeder thread: the only thing that changes the cache. It follows the backend's event
//! stream in revision order (kube-apiserver's cacher), so writes of this server and of any other
//! server on the same backend reach the cache and the watchers alike.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, Change, Changes, Row};
use crate::model::{Event, EventType, Stored};
use crate::watch::Hub;
use crate::writer::Shared;
use crate::StoreError;

/// The cache's objects from a backend snapshot.
pub(crate) fn objects(rows: Vec<Row>) -> Result<BTreeMap<String, Arc<Stored>>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let stored = Stored::decode(&row.key, &row.value, row.rev)?;
            Ok((row.key, Arc::new(stored)))
        })
        .collect()
}

/// Follows `first`, then re-watches from the cache's revision after a broken stream, and
/// relists when the backend compacted past it. Returns once the backend is closed.
pub(crate) fn run(backend: Arc<dyn Backend>, shared: Arc<Shared>, first: Box<dyn Changes>) {
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    let mut backoff = Duration::from_millis(50);
    let mut changes = Ok(first);
    loop {
        let result = changes.and_then(|mut changes| follow(&shared, &mut *changes));
        let Err(err) = result;
        match err {
            StoreError::Closed => return,
            StoreError::Compacted { .. } => {
                tracing::warn!("the store's watch fell behind a compaction ({err}); relisting");
                if let Err(e) = relist(&*backend, &shared) {
                    tracing::warn!("relisting the store failed: {e}");
                    std::thread::sleep(backoff);
                }
            }
            err => {
                tracing::warn!("the store's watch broke ({err}); watching again");
                // A retry back-off, not a synchronisation: the backend is unreachable.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        changes = backend.watch(shared.read().rv);
    }
}

fn follow(shared: &Shared, changes: &mut dyn Changes) -> Result<Infallible, StoreError> {
    loop {
        let batch = changes.next()?;
        apply(shared, batch);
    }
}

/// Applies committed changes to the cache and publishes their events.
pub(crate) fn apply(shared: &Shared, changes: Vec<Change>) {
    // Hub first, then state: a watch registering concurrently sees both or neither.
    let mut hub = shared.hub();
    let mut events = Vec::with_capacity(changes.len());
    let rv = {
        let mut state = shared.write();
        for change in changes {
            if change.rev <= state.rv {
                continue; // seen before the stream was re-opened
            }
            state.rv = change.rev;
            let prev = state.objects.get(&change.key).cloned();
            let object = match &change.value {
                Some(bytes) => Stored::decode(&change.key, bytes, change.rev),
                None => match (&change.prev, &prev) {
                    (Some(bytes), _) => Stored::decode(&change.key, bytes, change.rev),
                    (None, Some(prev)) => Stored::stamp(prev.value.clone(), change.rev)
                        .map_err(|e| StoreError::Backend(e.to_string())),
                    (None, None) => continue, // a delete of a key the cache never held
                },
            };
            let object = match object {
                Ok(object) => Arc::new(object),
                Err(e) => {
                    tracing::warn!("skipping a change the store cannot read: {e}");
                    continue;
                }
            };
            let kind = match (&change.value, &prev) {
                (None, _) => EventType::Deleted,
                (Some(_), Some(_)) => EventType::Modified,
                (Some(_), None) => EventType::Added,
            };
            match kind {
                EventType::Deleted => state.objects.remove(&change.key),
                _ => state
                    .objects
                    .insert(change.key.clone(), Arc::clone(&object)),
            };
            events.push(Arc::new(Event {
                kind,
                key: change.key,
                rv: change.rev,
                object,
                prev,
            }));
        }
        state.rv
    };
    hub.publish(events, rv);
    drop(hub);
    shared.applied(rv);
}

/// Replaces the cache with a fresh snapshot. The watch history is lost: open watches end (their
/// clients relist) and a watch from before the snapshot gets 410.
fn relist(backend: &dyn Backend, shared: &Shared) -> Result<(), StoreError> {
    let loaded = backend.load_all()?;
    let objects = objects(loaded.rows)?;
    let mut hub = shared.hub();
    *hub = Hub::new(loaded.rev, shared.history, shared.watch_buffer);
    {
        let mut state = shared.write();
        state.objects = objects;
        state.rv = loaded.rev;
    }
    drop(hub);
    shared.applied(loaded.rev);
    Ok(())
}
