//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation, as upstream's
//! TriggerTimeTracker computes it: per Service, the earliest of the trigger times that changed
//! since its last sync (a pod's Ready transition, the Service's creation). The proxy measures
//! network programming latency from it.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::Key;

pub const ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Default)]
struct Seen {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// What each Service's last sync saw.
#[derive(Default)]
pub struct TriggerTimes(Mutex<HashMap<Key, Seen>>);

/// When `pod` last changed in a way that moves its endpoint: its Ready condition's transition.
fn pod_trigger(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    ready.last_transition_time.as_ref().map(|t| t.0)
}

impl TriggerTimes {
    /// The trigger time to stamp on what this sync of `key` writes, if anything changed.
    pub fn compute(&self, key: &Key, svc: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(key.clone()).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut now = HashMap::new();
        for pod in pods {
            if let Some(t) = pod_trigger(pod) {
                if seen
                    .pods
                    .get(&pod.name_any())
                    .is_none_or(|before| t > *before)
                {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
                now.insert(pod.name_any(), t);
            }
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created.filter(|t| seen.service.is_none_or(|before| *t > before)) {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        seen.pods = now;
        seen.service = created;
        earliest
    }

    /// Forgets a Service that is gone.
    pub fn forget(&self, key: &Key) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Sets (or, without a trigger, removes) the annotation on an object about to be written.
pub fn stamp(
    annotations: &mut Option<std::collections::BTreeMap<String, String>>,
    t: Option<Timestamp>,
) {
    match t {
        Some(t) => {
            annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION.into(), t.to_string());
        }
        None => {
            if let Some(a) = annotations.as_mut() {
                a.remove(ANNOTATION);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready_at: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}}),
        )
        .unwrap()
    }

    #[test]
    fn the_earliest_changed_trigger_since_the_last_sync() {
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
        )
        .unwrap();
        let key = ("default".to_string(), "web".to_string());
        let tracker = TriggerTimes::default();
        let a = pod("a", "2026-01-01T00:00:05Z");
        // First sync: the Service's creation is the earliest change.
        assert_eq!(
            tracker.compute(&key, &svc, &[&a]).unwrap().to_string(),
            "2026-01-01T00:00:00Z"
        );
        // Nothing changed: no trigger.
        assert_eq!(tracker.compute(&key, &svc, &[&a]), None);
        // b turns Ready, a changes later: the earlier of the two changes.
        let b = pod("b", "2026-01-01T00:00:10Z");
        let a2 = pod("a", "2026-01-01T00:00:20Z");
        assert_eq!(
            tracker.compute(&key, &svc, &[&a2, &b]).unwrap().to_string(),
            "2026-01-01T00:00:10Z"
        );
        tracker.forget(&key);
        assert!(tracker.compute(&key, &svc, &[&a2, &b]).is_some());
    }

    #[test]
    fn stamping_sets_or_clears_the_annotation() {
        let mut annotations = None;
        stamp(
            &mut annotations,
            Some("2026-01-01T00:00:10Z".parse().unwrap()),
        );
        assert_eq!(
            annotations.as_ref().unwrap()[ANNOTATION],
            "2026-01-01T00:00:10Z"
        );
        stamp(&mut annotations, None);
        assert!(annotations.unwrap().is_empty());
    }
}
