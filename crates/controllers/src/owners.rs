//! Owners and the phase of what they own: the controller ownerReference, and an index of
//! objects by their controller's uid, kept from a watch like the owner indexers of
//! kube-controller-manager's informers, so a loop reads its children without listing them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::watcher::Event;
use kube::Resource;

/// The controller ownerReference children get (controller and blockOwnerDeletion true).
pub(crate) fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: obj.meta().name.clone().unwrap_or_default(),
        uid: obj.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The uid of the object's controller, if it has one.
pub(crate) fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The pod has run to its end: Succeeded or Failed.
pub(crate) fn pod_finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Not terminating and not finished.
pub(crate) fn pod_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !pod_finished(pod)
}

/// Namespace and name.
type Key = (String, String);

struct Index<K> {
    by_owner: HashMap<String, HashMap<Key, Arc<K>>>,
    owner_of: HashMap<Key, String>,
    /// The objects of a relist in progress; they replace the whole index when it ends.
    relist: Option<Vec<K>>,
}

impl<K: Resource> Index<K> {
    fn key(obj: &K) -> Key {
        let m = obj.meta();
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }

    fn remove(&mut self, key: &Key) {
        let Some(owner) = self.owner_of.remove(key) else {
            return;
        };
        if let Some(owned) = self.by_owner.get_mut(&owner) {
            owned.remove(key);
            if owned.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
    }

    fn insert(&mut self, obj: K) {
        let key = Self::key(&obj);
        self.remove(&key);
        if let Some(owner) = controller_uid(obj.meta()).map(str::to_string) {
            self.owner_of.insert(key.clone(), owner.clone());
            self.by_owner
                .entry(owner)
                .or_default()
                .insert(key, Arc::new(obj));
        }
    }
}

/// Objects by the uid of their controller, fed the events of a watch.
pub struct ByOwner<K>(Arc<RwLock<Index<K>>>);

impl<K> Clone for ByOwner<K> {
    fn clone(&self) -> Self {
        ByOwner(self.0.clone())
    }
}

impl<K> Default for ByOwner<K> {
    fn default() -> Self {
        ByOwner(Arc::new(RwLock::new(Index {
            by_owner: HashMap::new(),
            owner_of: HashMap::new(),
            relist: None,
        })))
    }
}

impl<K: Resource + Clone> ByOwner<K> {
    /// The objects the owner with `uid` controls, in no order.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<K>> {
        let index = self.0.read().unwrap_or_else(|e| e.into_inner());
        index
            .by_owner
            .get(uid)
            .map(|owned| owned.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies one watch event.
    pub fn apply(&self, event: &Event<K>) {
        let mut index = self.0.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(obj) => index.insert(obj.clone()),
            Event::Delete(obj) => {
                let key = Index::key(obj);
                index.remove(&key);
            }
            Event::Init => index.relist = Some(Vec::new()),
            Event::InitApply(obj) => index.relist.get_or_insert_default().push(obj.clone()),
            Event::InitDone => {
                let listed = index.relist.take().unwrap_or_default();
                index.by_owner.clear();
                index.owner_of.clear();
                for obj in listed {
                    index.insert(obj);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;

    fn job(name: &str, owner: Option<&str>) -> Job {
        let owner_references = owner.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        });
        Job {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                owner_references,
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    fn names(index: &ByOwner<Job>, uid: &str) -> Vec<String> {
        let mut names: Vec<String> = index
            .owned_by(uid)
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn objects_follow_their_controller() {
        let index = ByOwner::default();
        index.apply(&Event::Apply(job("a", Some("u1"))));
        index.apply(&Event::Apply(job("b", Some("u1"))));
        index.apply(&Event::Apply(job("free", None)));
        assert_eq!(names(&index, "u1"), ["a", "b"]);
        // Adopted by another owner, then deleted.
        index.apply(&Event::Apply(job("b", Some("u2"))));
        assert_eq!(names(&index, "u1"), ["a"]);
        assert_eq!(names(&index, "u2"), ["b"]);
        index.apply(&Event::Delete(job("a", Some("u1"))));
        assert!(index.owned_by("u1").is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_once_done() {
        let index = ByOwner::default();
        index.apply(&Event::Apply(job("gone", Some("u1"))));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(job("new", Some("u1"))));
        assert_eq!(
            names(&index, "u1"),
            ["gone"],
            "the old state until the list ends"
        );
        index.apply(&Event::InitDone);
        assert_eq!(names(&index, "u1"), ["new"]);
    }

    #[test]
    fn phases() {
        let mut pod = Pod::default();
        assert!(pod_active(&pod) && !pod_finished(&pod));
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Failed".into()),
            ..Default::default()
        });
        assert!(pod_finished(&pod) && !pod_active(&pod));
    }
}
