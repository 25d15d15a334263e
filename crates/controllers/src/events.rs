//! A core/v1 Event recorder (kinet serves no events.k8s.io, so kube-runtime's recorder is out).
//!
//! Like client-go's event correlator, repeats of the same (object, type, reason, message) are
//! folded into one Event whose `count` and `lastTimestamp` are bumped, so a loop that reports the
//! same thing on every reconcile does not flood the namespace. Publishing never fails the caller:
//! errors are logged, because an Event is a hint for humans, not part of the reconcile.
//!
//! ```no_run
//! # async fn f(client: kube::Client, rs: &k8s_openapi::api::apps::v1::ReplicaSet) {
//! use kinet_controllers::events::{object_ref, EventType, Recorder};
//! let recorder = Recorder::new(client, "replicaset-controller");
//! recorder.publish(&object_ref(rs), EventType::Normal, "SuccessfulCreate", "Created pod: web-abc12").await;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

/// How many distinct events the correlator remembers before it starts over.
const CACHE_LIMIT: usize = 4096;

/// The `type` of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two events "the same" for aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    type_: EventType,
    reason: String,
    message: String,
}

/// An Event already written: its name and how often it happened.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
}

/// Publishes core/v1 Events on behalf of one component. Cheap to clone; clones share the
/// aggregation cache.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

/// An error as an Event message shows it: the API's own message for a refused request, as
/// client-go's errors print, rather than the client's debug form.
pub fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The reference to put in `involvedObject` for any typed object (kind, apiVersion, name,
/// namespace, uid, resourceVersion).
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

impl Recorder {
    /// A recorder that reports as `component` (in `source.component` and `reportingComponent`).
    pub fn new(client: Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records that `reason`/`message` happened to `obj`. A repeat of an earlier (object, type,
    /// reason, message) bumps that Event's `count` and `lastTimestamp` instead of adding one.
    /// Never fails: errors are logged.
    pub async fn publish(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.try_publish(obj, type_, reason, message).await {
            tracing::warn!(component = %self.component, reason, object = ?obj.name, error = %e, "could not record event");
        }
    }

    async fn try_publish(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> kube::Result<()> {
        // Cluster-scoped objects (nodes, namespaces) get their events in `default`, as client-go does.
        let namespace = obj
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = Key {
            namespace: namespace.clone(),
            kind: obj.kind.clone().unwrap_or_default(),
            name: obj.name.clone().unwrap_or_default(),
            uid: obj.uid.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let prior = self.lock().get(&key).cloned();
        if let Some(seen) = prior {
            let count = seen.count + 1;
            let patch = json!({"count": count, "lastTimestamp": Time(now), "message": message});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(
                        key,
                        Seen {
                            name: seen.name,
                            count,
                        },
                    );
                    return Ok(());
                }
                // Someone deleted it (or it expired): start a fresh one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.new_event(obj, &namespace, type_, reason, message, now);
        let created = api.create(&PostParams::default(), &event).await?;
        self.remember(
            key,
            Seen {
                name: created.name_any(),
                count: 1,
            },
        );
        Ok(())
    }

    fn new_event(
        &self,
        obj: &ObjectReference,
        namespace: &str,
        type_: EventType,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Event {
        let base = obj.name.clone().unwrap_or_else(|| "unknown".into());
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(&base, now)),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            involved_object: obj.clone(),
            type_: Some(type_.as_str().to_string()),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: Key, seen: Seen) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT && !cache.contains_key(&key) {
            cache.clear();
        }
        cache.insert(key, seen);
    }
}

/// `<object-name>.<hex nanoseconds>`, client-go's naming, unique per object and instant.
fn event_name(object: &str, now: Timestamp) -> String {
    format!("{object}.{:x}", now.as_nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_object_dot_hex() {
        let t = Timestamp::from_nanosecond(0x1234_5678_9abc).unwrap();
        assert_eq!(event_name("web-1", t), "web-1.123456789abc");
    }

    #[test]
    fn types_serialize_as_kubernetes_spells_them() {
        assert_eq!(EventType::Normal.as_str(), "Normal");
        assert_eq!(EventType::Warning.as_str(), "Warning");
    }
}
