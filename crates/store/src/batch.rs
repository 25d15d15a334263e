//! Applying a group of write closures against committed state plus an in-batch overlay.
//!
//! Pure logic: it decides rvs, events and outcomes; the writer thread commits the result and only
//! then makes it visible.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use kinet_types::ApiError;
use serde_json::Value;

use crate::backend::{Batch, Change, Row};
use crate::model::{Event, EventType, Mutation, Stored, WriteOutcome};

/// A caller's read-modify-write closure.
pub(crate) type WriteFn = Box<dyn FnOnce(Option<&Value>) -> Result<Mutation, ApiError> + Send>;

/// What a batch would do once committed.
pub(crate) struct Applied {
    /// Durable changes, in order, with the final rv.
    pub batch: Batch,
    /// Final state of every key the batch changed (`None` = deleted).
    pub overlay: HashMap<String, Option<Arc<Stored>>>,
    pub events: Vec<Arc<Event>>,
    /// One result per request, in request order.
    pub results: Vec<Result<WriteOutcome, ApiError>>,
}

/// Runs each closure in order. `committed` looks a key up in committed state; `rv` is the
/// committed global rv. A closure's error (or panic) affects only its own request.
pub(crate) fn apply(
    committed: impl Fn(&str) -> Option<Arc<Stored>>,
    rv: u64,
    requests: impl IntoIterator<Item = (String, WriteFn)>,
) -> Applied {
    let mut rv = rv;
    let mut out = Applied {
        batch: Batch {
            changes: Vec::new(),
            rv,
        },
        overlay: HashMap::new(),
        events: Vec::new(),
        results: Vec::new(),
    };
    for (key, f) in requests {
        let current = match out.overlay.get(&key) {
            Some(state) => state.clone(),
            None => committed(&key),
        };
        let decided = catch_unwind(AssertUnwindSafe(|| f(current.as_deref().map(|s| &s.value))))
            .unwrap_or_else(|_| Err(ApiError::internal("storage update function panicked")));
        let result = decided.and_then(|mutation| match (mutation, current) {
            (Mutation::Unchanged, cur) | (Mutation::Delete, cur @ None) => Ok(unchanged(cur, rv)),
            (Mutation::Put(value), current) => {
                let stored = Arc::new(Stored::stamp(value, rv + 1).map_err(ApiError::internal)?);
                let kind = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                rv += 1;
                out.batch.changes.push(Change::Put(Row {
                    key: key.clone(),
                    rv,
                    json: stored.json.clone(),
                }));
                out.overlay.insert(key.clone(), Some(Arc::clone(&stored)));
                Ok(changed(&mut out.events, &key, kind, stored, current))
            }
            (Mutation::Delete, Some(prev)) => {
                let stored = Arc::new(
                    Stored::stamp(prev.value.clone(), rv + 1).map_err(ApiError::internal)?,
                );
                rv += 1;
                out.batch.changes.push(Change::Delete(key.clone()));
                out.overlay.insert(key.clone(), None);
                Ok(changed(
                    &mut out.events,
                    &key,
                    EventType::Deleted,
                    stored,
                    Some(prev),
                ))
            }
        });
        out.results.push(result);
    }
    out.batch.rv = rv;
    out
}

fn unchanged(object: Option<Arc<Stored>>, global_rv: u64) -> WriteOutcome {
    let rv = object.as_ref().map_or(global_rv, |s| s.rv);
    WriteOutcome {
        object,
        rv,
        changed: false,
        kind: None,
    }
}

fn changed(
    events: &mut Vec<Arc<Event>>,
    key: &str,
    kind: EventType,
    object: Arc<Stored>,
    prev: Option<Arc<Stored>>,
) -> WriteOutcome {
    let rv = object.rv;
    events.push(Arc::new(Event {
        kind,
        key: key.to_string(),
        rv,
        object: Arc::clone(&object),
        prev,
    }));
    WriteOutcome {
        object: Some(object),
        rv,
        changed: true,
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn req(
        key: &str,
        f: impl FnOnce(Option<&Value>) -> Result<Mutation, ApiError> + Send + 'static,
    ) -> (String, WriteFn) {
        (key.to_string(), Box::new(f))
    }

    fn base() -> BTreeMap<String, Arc<Stored>> {
        let mut m = BTreeMap::new();
        m.insert(
            "a".into(),
            Arc::new(Stored::stamp(json!({"v": 1}), 5).unwrap()),
        );
        m
    }

    #[test]
    fn overlay_is_visible_to_later_requests_in_the_batch() {
        let map = base();
        let applied = apply(
            |k| map.get(k).cloned(),
            5,
            vec![
                req("b", |cur| {
                    assert!(cur.is_none());
                    Ok(Mutation::Put(json!({"v": 1})))
                }),
                req("b", |cur| {
                    assert_eq!(cur.unwrap()["metadata"]["resourceVersion"], "6");
                    Ok(Mutation::Put(json!({"v": 2})))
                }),
                req("a", |_| Ok(Mutation::Delete)),
                req("a", |cur| {
                    assert!(cur.is_none(), "deleted earlier in the batch");
                    Ok(Mutation::Unchanged)
                }),
            ],
        );
        let kinds: Vec<_> = applied
            .results
            .iter()
            .map(|r| r.as_ref().unwrap().kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some(EventType::Added),
                Some(EventType::Modified),
                Some(EventType::Deleted),
                None
            ]
        );
        let rvs: Vec<_> = applied
            .results
            .iter()
            .map(|r| r.as_ref().unwrap().rv)
            .collect();
        assert_eq!(rvs, vec![6, 7, 8, 8]);
        assert_eq!(applied.batch.rv, 8);
        assert_eq!(applied.batch.changes.len(), 3);
        assert_eq!(
            applied.events.iter().map(|e| e.rv).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        assert!(applied.overlay["a"].is_none());
        assert_eq!(applied.overlay["b"].as_ref().unwrap().value["v"], 2);
    }

    #[test]
    fn delete_stamps_the_last_value_with_the_delete_rv() {
        let map = base();
        let applied = apply(
            |k| map.get(k).cloned(),
            5,
            vec![req("a", |_| Ok(Mutation::Delete))],
        );
        let ev = &applied.events[0];
        assert_eq!(
            ev.object.value,
            json!({"v": 1, "metadata": {"resourceVersion": "6"}})
        );
        assert_eq!(ev.prev.as_ref().unwrap().rv, 5);
    }

    #[test]
    fn errors_panics_and_no_ops_write_nothing() {
        let map = base();
        let applied = apply(
            |k| map.get(k).cloned(),
            5,
            vec![
                req("a", |_| {
                    Err(ApiError::conflict(&kinet_types::RESOURCES[0], "a"))
                }),
                req("a", |_| panic!("boom")),
                req("a", |_| Ok(Mutation::Put(json!("not an object")))),
                req("missing", |_| Ok(Mutation::Delete)),
                req("a", |_| Ok(Mutation::Unchanged)),
            ],
        );
        assert!(applied.batch.changes.is_empty());
        assert!(applied.events.is_empty());
        assert_eq!(applied.batch.rv, 5);
        let codes: Vec<_> = applied
            .results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(codes, vec![Some(409), Some(500), Some(500), None, None]);
        let missing = applied.results[3].as_ref().unwrap();
        assert!(missing.object.is_none() && !missing.changed);
        assert_eq!(applied.results[4].as_ref().unwrap().rv, 5);
    }
}
