//! Turning a caller's read-modify-write closure into one conditional backend op, and the op's
//! outcome back into the caller's answer.
//!
//! Pure logic: the writer thread runs the closure against the cache, commits the op, and answers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use kinet_types::ApiError;
use serde_json::Value;

use crate::backend::{Op, Outcome};
use crate::model::{EventType, Mutation, Stored, WriteOutcome};

/// A caller's read-modify-write closure.
pub(crate) type WriteFn = Box<dyn FnOnce(Option<&Value>) -> Result<Mutation, ApiError> + Send>;

/// What a closure decided, before anything is committed.
pub(crate) enum Decided {
    /// Nothing to write: the answer is known now.
    Answer(Result<WriteOutcome, ApiError>),
    /// One op to commit; `value` is what the answer's object will hold (for a delete, the last
    /// value), stamped with the op's revision.
    Write {
        op: Op,
        value: Value,
        kind: EventType,
    },
}

/// Runs `f` on the key's cached object; `rv` is the cache's revision. A closure's error (or
/// panic) affects only its own request.
pub(crate) fn decide(key: &str, current: Option<&Stored>, rv: u64, f: WriteFn) -> Decided {
    let decided = catch_unwind(AssertUnwindSafe(|| f(current.map(|s| &s.value))))
        .unwrap_or_else(|_| Err(ApiError::internal("storage update function panicked")));
    let expect = current.map_or(0, |s| s.rv);
    match decided {
        Err(e) => Decided::Answer(Err(e)),
        Ok(Mutation::Unchanged) | Ok(Mutation::Delete) if current.is_none() => {
            Decided::Answer(Ok(unchanged(None, rv)))
        }
        Ok(Mutation::Unchanged) => Decided::Answer(Ok(unchanged(current, rv))),
        Ok(Mutation::Put(value)) => match stored_bytes(&value) {
            Ok(bytes) => Decided::Write {
                op: Op::Put {
                    key: key.to_string(),
                    value: bytes,
                    expect,
                },
                value,
                kind: match current {
                    Some(_) => EventType::Modified,
                    None => EventType::Added,
                },
            },
            Err(e) => Decided::Answer(Err(ApiError::internal(e))),
        },
        Ok(Mutation::Delete) => Decided::Write {
            op: Op::Delete {
                key: key.to_string(),
                expect,
            },
            value: current.map(|s| s.value.clone()).unwrap_or_default(),
            kind: EventType::Deleted,
        },
    }
}

/// The caller's answer once its op was committed (or refused).
pub(crate) fn finish(
    key: &str,
    value: Value,
    kind: EventType,
    outcome: Outcome,
) -> Result<WriteOutcome, ApiError> {
    match outcome {
        Outcome::Done(rev) => {
            let object = Stored::stamp(value, rev).map_err(ApiError::internal)?;
            Ok(WriteOutcome {
                object: Some(Arc::new(object)),
                rv: rev,
                changed: true,
                kind: Some(kind),
            })
        }
        Outcome::Conflict => Err(conflict(key)),
    }
}

/// The bytes a backend stores: the object without `metadata.resourceVersion`, which is the
/// revision and is stamped back on read (as kube-apiserver does).
pub(crate) fn stored_bytes(value: &Value) -> Result<Bytes, &'static str> {
    let obj = value
        .as_object()
        .ok_or("a stored object must be a JSON object")?;
    let json = match obj.get("metadata").and_then(Value::as_object) {
        Some(meta) if meta.contains_key("resourceVersion") => {
            let mut obj = obj.clone();
            if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                meta.remove("resourceVersion");
            }
            serde_json::to_vec(&obj)
        }
        _ => serde_json::to_vec(obj),
    };
    json.map(Bytes::from).map_err(|_| "unserialisable value")
}

/// 409 for a write whose key changed since the cache saw it (another API server wrote it).
fn conflict(key: &str) -> ApiError {
    let name = key.rsplit('/').next().unwrap_or(key);
    match kinet_types::RESOURCES
        .iter()
        .find(|r| key.starts_with(&format!("{}/", r.key_prefix())))
    {
        Some(resource) => ApiError::conflict(resource, name),
        None => ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {key:?}: the object has been modified; please apply your changes to the latest version and try again"),
        ),
    }
}

fn unchanged(object: Option<&Stored>, global_rv: u64) -> WriteOutcome {
    WriteOutcome {
        rv: object.map_or(global_rv, |s| s.rv),
        object: object.map(|s| Arc::new(s.clone())),
        changed: false,
        kind: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(
        f: impl FnOnce(Option<&Value>) -> Result<Mutation, ApiError> + Send + 'static,
    ) -> WriteFn {
        Box::new(f)
    }

    fn existing() -> Stored {
        Stored::stamp(json!({"v": 1}), 5).unwrap()
    }

    #[test]
    fn puts_compare_against_the_cached_revision() {
        let cur = existing();
        let Decided::Write { op, kind, .. } = decide(
            "a",
            Some(&cur),
            9,
            write(|_| Ok(Mutation::Put(json!({"v": 2})))),
        ) else {
            panic!("expected a write")
        };
        assert_eq!(kind, EventType::Modified);
        assert_eq!(
            op,
            Op::Put {
                key: "a".into(),
                value: Bytes::from_static(br#"{"v":2}"#),
                expect: 5
            }
        );
        let Decided::Write { op, kind, .. } =
            decide("b", None, 9, write(|_| Ok(Mutation::Put(json!({"v": 2})))))
        else {
            panic!("expected a write")
        };
        assert_eq!((op.key(), kind), ("b", EventType::Added));
        assert!(matches!(op, Op::Put { expect: 0, .. }));
    }

    #[test]
    fn a_delete_answers_with_the_last_value_at_the_delete_revision() {
        let cur = existing();
        let Decided::Write { op, value, kind } =
            decide("a", Some(&cur), 9, write(|_| Ok(Mutation::Delete)))
        else {
            panic!("expected a write")
        };
        assert_eq!(
            op,
            Op::Delete {
                key: "a".into(),
                expect: 5
            }
        );
        let out = finish("a", value, kind, Outcome::Done(12)).unwrap();
        assert_eq!(
            out.object.unwrap().value,
            json!({"v": 1, "metadata": {"resourceVersion": "12"}})
        );
        assert_eq!((out.rv, out.kind), (12, Some(EventType::Deleted)));
    }

    #[test]
    fn errors_panics_and_no_ops_write_nothing() {
        let cur = existing();
        let answer = |d: Decided| match d {
            Decided::Answer(a) => a,
            Decided::Write { .. } => panic!("nothing should be written"),
        };
        let codes = [
            answer(decide(
                "a",
                Some(&cur),
                9,
                write(|_| Err(ApiError::bad_request("no"))),
            )),
            answer(decide("a", Some(&cur), 9, write(|_| panic!("boom")))),
            answer(decide(
                "a",
                Some(&cur),
                9,
                write(|_| Ok(Mutation::Put(json!("x")))),
            )),
        ]
        .map(|r| r.unwrap_err().code);
        assert_eq!(codes, [400, 500, 500]);
        let missing = answer(decide("m", None, 9, write(|_| Ok(Mutation::Delete)))).unwrap();
        assert!(missing.object.is_none() && !missing.changed);
        assert_eq!(missing.rv, 9);
        let same = answer(decide(
            "a",
            Some(&cur),
            9,
            write(|_| Ok(Mutation::Unchanged)),
        ))
        .unwrap();
        assert_eq!((same.rv, same.changed), (5, false));
    }

    #[test]
    fn a_refused_compare_is_a_kubernetes_conflict() {
        let err = finish(
            "core/pods/default/web",
            json!({}),
            EventType::Modified,
            Outcome::Conflict,
        )
        .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert!(
            err.message
                .starts_with("Operation cannot be fulfilled on pods \"web\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_stored_bytes_leave_the_resource_version_out() {
        let v = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {}});
        assert_eq!(
            stored_bytes(&v).unwrap(),
            Bytes::from_static(br#"{"metadata":{"name":"a"},"spec":{}}"#)
        );
    }
}
