//! The EndpointSlices of each Service, kept from the slice watch, and the loop's own writes the
//! watch has not shown yet. A reconcile reads a Service's slices from here instead of listing
//! them (a labelled list costs the whole namespace at the API server, so 10,000 Services cost
//! 10,000²). As upstream's endpointslice tracker: while a write of the loop's own is not yet
//! in the watch, the cached view is stale and the reconcile reads live instead, so a slice is
//! never made twice and a just-deleted one never counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::slices::SERVICE_NAME_LABEL;

/// A namespaced object by namespace and name.
pub type Key = (String, String);

/// What the loop last did to a slice and the watch has not shown yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Created or updated, at this resourceVersion.
    At(u64),
    Deleted,
}

#[derive(Debug, Default)]
pub struct OwnedSlices {
    /// Service → its slices by name.
    by_service: HashMap<Key, BTreeMap<String, Arc<EndpointSlice>>>,
    /// Slice → the Service its label names now.
    service_of: HashMap<Key, Key>,
    /// Service → its slices the loop wrote and the watch has not shown yet.
    pending: HashMap<Key, HashMap<String, Written>>,
    /// Services with a write whose outcome is unknown (it failed): read live next time.
    unsure: HashSet<Key>,
    /// Slices seen since a relist began.
    listed: HashSet<Key>,
}

fn version(slice: &EndpointSlice) -> Option<u64> {
    slice.resource_version()?.parse().ok()
}

fn service_of(slice: &EndpointSlice) -> Option<Key> {
    let name = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some((slice.namespace()?, name.clone()))
}

impl OwnedSlices {
    /// A Service's slices, or `None` while a write of the loop's own is not in the watch yet.
    pub fn of(&self, service: &Key) -> Option<Vec<EndpointSlice>> {
        if self.unsure.contains(service) || self.pending.get(service).is_some_and(|p| !p.is_empty())
        {
            return None;
        }
        let slices = self.by_service.get(service).into_iter().flatten();
        Some(slices.map(|(_, s)| (**s).clone()).collect())
    }

    /// A slice as the watch shows it now (also during a relist).
    pub fn apply(&mut self, slice: EndpointSlice) {
        let Some(ns) = slice.namespace() else { return };
        let key = (ns, slice.name_any());
        self.listed.insert(key.clone());
        self.forget(&key);
        let Some(service) = service_of(&slice) else {
            return;
        };
        if let Some(pending) = self.pending.get_mut(&service) {
            let shown = match (pending.get(&key.1), version(&slice)) {
                (Some(Written::At(want)), Some(got)) => got >= *want,
                _ => false,
            };
            if shown {
                pending.remove(&key.1);
            }
        }
        self.service_of.insert(key.clone(), service.clone());
        let slices = self.by_service.entry(service).or_default();
        slices.insert(key.1, Arc::new(slice));
    }

    /// A slice the watch shows deleted.
    pub fn delete(&mut self, slice: &EndpointSlice) {
        let Some(ns) = slice.namespace() else { return };
        let key = (ns, slice.name_any());
        if let Some(service) = service_of(slice) {
            if let Some(pending) = self.pending.get_mut(&service) {
                pending.remove(&key.1);
            }
        }
        self.forget(&key);
    }

    fn forget(&mut self, key: &Key) {
        let Some(service) = self.service_of.remove(key) else {
            return;
        };
        if let Some(slices) = self.by_service.get_mut(&service) {
            slices.remove(&key.1);
            if slices.is_empty() {
                self.by_service.remove(&service);
            }
        }
    }

    /// The loop created or updated `slice` (as the API server answered).
    pub fn wrote(&mut self, service: &Key, slice: &EndpointSlice) {
        let Some(at) = version(slice) else {
            // Without a comparable version the watch can never be shown to have caught up:
            // leave the cache alone and let the next watch event of this slice requeue.
            return;
        };
        let shown = self
            .by_service
            .get(service)
            .and_then(|s| s.get(&slice.name_any()))
            .and_then(|s| version(s))
            .is_some_and(|v| v >= at);
        if !shown {
            let pending = self.pending.entry(service.clone()).or_default();
            pending.insert(slice.name_any(), Written::At(at));
        }
    }

    /// The loop deleted the slice `name` of `service`.
    pub fn deleted(&mut self, service: &Key, name: &str) {
        let present = self
            .by_service
            .get(service)
            .is_some_and(|s| s.contains_key(name));
        if present {
            let pending = self.pending.entry(service.clone()).or_default();
            pending.insert(name.to_string(), Written::Deleted);
        }
    }

    /// A write of the Service's slices failed: it may or may not have happened.
    pub fn unsure(&mut self, service: &Key) {
        self.unsure.insert(service.clone());
    }

    /// The Service's slices as a live list shows them: until the watch shows the same, the
    /// cached view is stale.
    pub fn listed_live(&mut self, service: &Key, live: &[EndpointSlice]) {
        self.unsure.remove(service);
        let cached = self.by_service.get(service);
        let mut pending = HashMap::new();
        for s in live {
            let shown = cached
                .and_then(|c| c.get(&s.name_any()))
                .and_then(|c| version(c))
                .zip(version(s))
                .is_some_and(|(have, got)| have >= got);
            if !shown {
                pending.insert(s.name_any(), Written::At(version(s).unwrap_or(u64::MAX)));
            }
        }
        for name in cached.into_iter().flat_map(BTreeMap::keys) {
            if !live.iter().any(|s| s.name_any() == *name) {
                pending.insert(name.clone(), Written::Deleted);
            }
        }
        self.pending.insert(service.clone(), pending);
    }

    /// A relist begins: what it does not show again is gone.
    pub fn relist(&mut self) {
        self.listed.clear();
    }

    /// A relist ended: forgets the slices it did not show, and any write still pending (the
    /// list is at least as new as every write answered before it).
    pub fn relisted(&mut self) {
        let gone: Vec<Key> = (self.service_of.keys())
            .filter(|k| !self.listed.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
        self.pending.clear();
        self.unsure.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, service: &str, rv: u64) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name, "resourceVersion": rv.to_string(),
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "endpoints": [],
        }))
        .unwrap()
    }

    fn key(name: &str) -> Key {
        ("default".into(), name.into())
    }

    fn names(slices: Option<Vec<EndpointSlice>>) -> Option<Vec<String>> {
        slices.map(|s| s.iter().map(|s| s.name_any()).collect())
    }

    #[test]
    fn slices_follow_the_watch_by_service_label() {
        let mut o = OwnedSlices::default();
        assert_eq!(names(o.of(&key("web"))), Some(vec![]));
        o.apply(slice("web-a", "web", 1));
        o.apply(slice("web-b", "web", 2));
        o.apply(slice("db-a", "db", 3));
        assert_eq!(
            names(o.of(&key("web"))),
            Some(vec!["web-a".into(), "web-b".into()])
        );
        // Relabelled to another Service: it moves.
        o.apply(slice("web-b", "db", 4));
        assert_eq!(names(o.of(&key("web"))), Some(vec!["web-a".into()]));
        assert_eq!(
            names(o.of(&key("db"))),
            Some(vec!["db-a".into(), "web-b".into()])
        );
        o.delete(&slice("web-a", "web", 5));
        assert_eq!(names(o.of(&key("web"))), Some(vec![]));
    }

    #[test]
    fn own_writes_make_the_view_stale_until_the_watch_shows_them() {
        let mut o = OwnedSlices::default();
        o.wrote(&key("web"), &slice("web-a", "web", 7));
        assert_eq!(o.of(&key("web")), None, "created, not yet watched");
        assert!(
            o.of(&key("db")).is_some(),
            "other Services are not affected"
        );
        o.apply(slice("web-a", "web", 7));
        assert_eq!(names(o.of(&key("web"))), Some(vec!["web-a".into()]));

        // An update: an older event does not satisfy it, its own does.
        o.wrote(&key("web"), &slice("web-a", "web", 9));
        o.apply(slice("web-a", "web", 8));
        assert_eq!(o.of(&key("web")), None);
        o.apply(slice("web-a", "web", 9));
        assert!(o.of(&key("web")).is_some());

        // The watch already showed it before the answer was recorded: nothing to wait for.
        o.apply(slice("web-a", "web", 10));
        o.wrote(&key("web"), &slice("web-a", "web", 10));
        assert!(o.of(&key("web")).is_some());

        // A delete is pending until the watch shows it gone.
        o.deleted(&key("web"), "web-a");
        assert_eq!(o.of(&key("web")), None);
        o.delete(&slice("web-a", "web", 11));
        assert_eq!(names(o.of(&key("web"))), Some(vec![]));
        // Deleting what the cache does not hold waits for nothing.
        o.deleted(&key("web"), "web-z");
        assert!(o.of(&key("web")).is_some());

        // A failed write: live reads until a live list says what is there, then until the
        // watch shows that.
        o.unsure(&key("web"));
        assert_eq!(o.of(&key("web")), None);
        o.listed_live(&key("web"), &[slice("web-q", "web", 12)]);
        assert_eq!(o.of(&key("web")), None, "web-q is not in the watch yet");
        o.apply(slice("web-q", "web", 12));
        assert_eq!(names(o.of(&key("web"))), Some(vec!["web-q".into()]));
        o.unsure(&key("web"));
        o.listed_live(&key("web"), &[]);
        assert_eq!(
            o.of(&key("web")),
            None,
            "web-q is gone, the watch has not said so"
        );
        o.delete(&slice("web-q", "web", 13));
        assert_eq!(names(o.of(&key("web"))), Some(vec![]));
        o.unsure(&key("web"));
        o.relist();
        o.relisted();
        assert!(
            o.of(&key("web")).is_some(),
            "a relist is as new as every write"
        );
    }

    #[test]
    fn a_relist_forgets_what_it_did_not_show() {
        let mut o = OwnedSlices::default();
        o.apply(slice("web-a", "web", 1));
        o.apply(slice("web-b", "web", 2));
        o.relist();
        o.apply(slice("web-b", "web", 2));
        o.relisted();
        assert_eq!(names(o.of(&key("web"))), Some(vec!["web-b".into()]));
    }
}
