//! The scheduler's view of the pods, kept from watch events: what the pods bound to each node
//! request, how many replicas of each controller each node holds, and the pending pods in
//! queue order. A pass then costs the nodes, the controllers and the pending pods, not a walk
//! over every pod of the cluster at each event.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;
use kube::ResourceExt;

use super::is_pending;
use super::resources::{pod_requests, Resources};
use crate::owners::{controller_uid, pod_finished};

/// A pending pod's place in the queue: oldest first, then by namespace and name.
pub type QueueKey = (Option<Timestamp>, String, String);

#[derive(Debug)]
struct Entry {
    /// The node it is bound to, if it counts there (bound and not finished).
    counted_on: Option<String>,
    requests: Resources,
    owner: Option<String>,
    queued: Option<QueueKey>,
}

/// Pods by uid, and the sums the scheduler places against.
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, Entry>,
    used: HashMap<String, Resources>,
    siblings: HashMap<String, HashMap<String, u64>>,
    pending: BTreeMap<QueueKey, String>,
    /// The uids of a relist so far, to forget the pods it no longer holds.
    listed: HashSet<String>,
}

impl PodIndex {
    /// Applies one watch event.
    pub fn apply(&mut self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Apply(p) => self.set(p),
            watcher::Event::Delete(p) => self.remove(p.metadata.uid.as_deref().unwrap_or("")),
            watcher::Event::Init => self.listed.clear(),
            watcher::Event::InitApply(p) => {
                self.listed
                    .insert(p.metadata.uid.clone().unwrap_or_default());
                self.set(p);
            }
            watcher::Event::InitDone => {
                let listed = std::mem::take(&mut self.listed);
                let gone: Vec<String> = (self.pods.keys())
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                gone.iter().for_each(|uid| self.remove(uid));
            }
        }
    }

    /// Records the pod as it is now.
    pub fn set(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.remove(&uid);
        let spec = pod.spec.as_ref();
        let node = spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let entry = Entry {
            counted_on: node.filter(|_| !pod_finished(pod)),
            requests: spec.map(pod_requests).unwrap_or_default(),
            owner: controller_uid(&pod.metadata).map(str::to_string),
            queued: is_pending(pod).then(|| {
                let created = pod.metadata.creation_timestamp.clone().map(|t| t.0);
                (created, pod.namespace().unwrap_or_default(), pod.name_any())
            }),
        };
        if let Some(node) = &entry.counted_on {
            *self.used.entry(node.clone()).or_default() += entry.requests;
            if let Some(owner) = &entry.owner {
                *(self.siblings.entry(owner.clone()).or_default())
                    .entry(node.clone())
                    .or_default() += 1;
            }
        }
        if let Some(q) = &entry.queued {
            self.pending.insert(q.clone(), uid.clone());
        }
        self.pods.insert(uid, entry);
    }

    /// Forgets a deleted pod.
    pub fn remove(&mut self, uid: &str) {
        let Some(e) = self.pods.remove(uid) else {
            return;
        };
        if let Some(node) = &e.counted_on {
            if let Some(u) = self.used.get_mut(node) {
                *u -= e.requests;
                if u.pods == 0 {
                    self.used.remove(node);
                }
            }
            if let Some(owner) = &e.owner {
                if let Some(per_node) = self.siblings.get_mut(owner) {
                    if let Some(n) = per_node.get_mut(node) {
                        *n -= 1;
                        if *n == 0 {
                            per_node.remove(node);
                        }
                    }
                    if per_node.is_empty() {
                        self.siblings.remove(owner);
                    }
                }
            }
        }
        if let Some(q) = &e.queued {
            self.pending.remove(q);
        }
    }

    /// What the pods bound to each node (and not finished) request.
    pub fn used(&self) -> &HashMap<String, Resources> {
        &self.used
    }

    /// Per controller uid, its bound replicas per node.
    pub fn siblings(&self) -> &HashMap<String, HashMap<String, u64>> {
        &self.siblings
    }

    /// The pending pods in queue order: (namespace, name, uid).
    pub fn pending(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        (self.pending.iter()).map(|((_, ns, name), uid)| (ns.as_str(), name.as_str(), uid.as_str()))
    }

    /// Whether the pod is known and still waits for a node.
    pub fn is_pending(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|e| e.queued.is_some())
    }

    /// The pod's controller uid.
    pub fn owner(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid)?.owner.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod requesting 100m and 1 Mi, owned by `owner`, on `node` (or pending).
    fn pod(name: &str, node: Option<&str>, owner: &str, phase: &str) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "resources": {"requests":
                              {"cpu": "100m", "memory": "1Mi"}}}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}"),
                         "creationTimestamp": format!("2026-01-01T00:00:0{}Z", name.len() % 10),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": owner, "uid": owner, "controller": true}]},
            "spec": spec,
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn res(pods: u64) -> Resources {
        Resources {
            milli_cpu: 100 * pods,
            memory: (1 << 20) * pods,
            pods,
        }
    }

    #[test]
    fn sums_follow_each_pod_event() {
        let mut ix = PodIndex::default();
        ix.set(&pod("a", Some("n1"), "rs", "Running"));
        ix.set(&pod("bb", None, "rs", "Pending"));
        ix.set(&pod("c", None, "rs", "Pending"));
        assert_eq!(ix.used()["n1"], res(1));
        assert_eq!(ix.siblings()["rs"]["n1"], 1);
        let queue: Vec<&str> = ix.pending().map(|(_, name, _)| name).collect();
        assert_eq!(queue, ["c", "bb"], "oldest first");
        assert!(ix.is_pending("uid-bb"));
        assert_eq!(ix.owner("uid-bb"), Some("rs"));

        // Bound: it leaves the queue and counts on its node.
        ix.set(&pod("bb", Some("n1"), "rs", "Pending"));
        assert_eq!(ix.used()["n1"], res(2));
        assert_eq!(ix.siblings()["rs"]["n1"], 2);
        assert!(!ix.is_pending("uid-bb"));
        // Finished: no longer counted.
        ix.set(&pod("a", Some("n1"), "rs", "Succeeded"));
        assert_eq!(ix.used()["n1"], res(1));
        // Deleted: gone from every sum.
        ix.apply(&watcher::Event::Delete(pod(
            "bb",
            Some("n1"),
            "rs",
            "Running",
        )));
        assert!(ix.used().is_empty());
        assert!(ix.siblings().is_empty());

        // A relist without c forgets it.
        ix.apply(&watcher::Event::Init);
        ix.apply(&watcher::Event::InitApply(pod(
            "d",
            Some("n2"),
            "rs",
            "Running",
        )));
        ix.apply(&watcher::Event::InitDone);
        assert_eq!(ix.pending().count(), 0);
        assert_eq!(ix.used().keys().collect::<Vec<_>>(), ["n2"]);
    }
}
