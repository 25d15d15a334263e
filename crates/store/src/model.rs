//! The values the store hands out: stored objects, mutations, events, outcomes and options.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::StoreError;

/// One stored object: the parsed value and its exact JSON bytes, so a LIST body can be built by
/// concatenation without re-serialising every item.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub value: Value,
    pub json: Bytes,
    /// The global resourceVersion of the write that produced this object; equals
    /// `metadata.resourceVersion` in `value`.
    pub rv: u64,
}

impl Stored {
    /// Stamps `metadata.resourceVersion` with `rv` and serialises.
    ///
    /// Fails if `value` is not a JSON object (every Kubernetes object is one).
    pub(crate) fn stamp(mut value: Value, rv: u64) -> Result<Stored, &'static str> {
        let obj = value
            .as_object_mut()
            .ok_or("a stored object must be a JSON object")?;
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !meta.is_object() {
            *meta = Value::Object(Default::default());
        }
        meta["resourceVersion"] = Value::String(rv.to_string());
        let json = Bytes::from(serde_json::to_vec(&value).map_err(|_| "unserialisable value")?);
        Ok(Stored { value, json, rv })
    }

    /// A backend's stored bytes at revision `rv`.
    pub(crate) fn decode(key: &str, bytes: &[u8], rv: u64) -> Result<Stored, StoreError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })?;
        Stored::stamp(value, rv)
            .map_err(|e| StoreError::Backend(format!("stored object {key:?}: {e}")))
    }
}

/// What a write closure decides to do with its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Store this value (the store sets `metadata.resourceVersion`).
    Put(Value),
    /// Remove the key. Deleting a missing key changes nothing.
    Delete,
    /// Leave the key as it is; no resourceVersion is consumed.
    Unchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The watch event `type` string kube-apiserver sends.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub key: String,
    pub rv: u64,
    /// The new object; for `Deleted`, the last value stamped with the delete's rv.
    pub object: Arc<Stored>,
    /// The value before this change (`None` for `Added`).
    pub prev: Option<Arc<Stored>>,
}

/// The result of [`crate::Store::write`].
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The object after the write; for a delete, the deleted object stamped with the delete's rv.
    /// `None` when nothing exists under the key and nothing was written.
    pub object: Option<Arc<Stored>>,
    /// For a change, the new global rv. When unchanged, the object's rv, or the store's rv at the
    /// time of the write if the key is missing.
    pub rv: u64,
    pub changed: bool,
    /// The event this write produced, if any.
    pub kind: Option<EventType>,
}

/// Tuning knobs for [`crate::Store::open_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Events kept in memory so a watch can resume from an older resourceVersion.
    pub history: usize,
    /// Most write requests folded into one commit.
    pub max_batch: usize,
    /// Live events a watcher may fall behind by before its watch ends (it then relists).
    pub watch_buffer: usize,
    /// How often the backend's history is compacted, at the revision of the previous tick (as
    /// kube-apiserver's compactor does every 5 minutes). Watches from before it get 410.
    pub compaction_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            history: 100_000,
            max_batch: 1024,
            watch_buffer: 16_384,
            compaction_interval: Duration::from_secs(300),
        }
    }
}

/// Counters for monitoring and for tests of group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Durable transactions committed by the backend.
    pub commits: u64,
    /// Changes (puts and deletes) committed.
    pub writes: u64,
    /// Objects currently stored.
    pub objects: u64,
    /// The current global resourceVersion.
    pub rv: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_sets_resource_version() {
        let cases = [
            (
                json!({"metadata": {"name": "a"}}),
                json!({"metadata": {"name": "a", "resourceVersion": "7"}}),
            ),
            (
                json!({"kind": "Pod"}),
                json!({"kind": "Pod", "metadata": {"resourceVersion": "7"}}),
            ),
            (
                json!({"metadata": null}),
                json!({"metadata": {"resourceVersion": "7"}}),
            ),
            (
                json!({"metadata": {"resourceVersion": "3"}}),
                json!({"metadata": {"resourceVersion": "7"}}),
            ),
        ];
        for (input, want) in cases {
            let s = Stored::stamp(input, 7).unwrap();
            assert_eq!(s.value, want);
            assert_eq!(s.rv, 7);
            assert_eq!(serde_json::from_slice::<Value>(&s.json).unwrap(), want);
        }
    }

    #[test]
    fn stamp_rejects_non_objects() {
        assert!(Stored::stamp(json!([1]), 1).is_err());
        assert!(Stored::stamp(json!("x"), 1).is_err());
    }
}
