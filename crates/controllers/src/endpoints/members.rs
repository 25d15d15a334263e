//! Which pods each Service selects, kept from watch events: a pod's change is matched
//! against the selectors of its namespace's Services only, and a Service's reconcile reads
//! its own pods from the index instead of filtering every pod of the cluster. As upstream's
//! endpointslice controller, which maps a pod to its Services through the Service lister.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

use super::desired::selector;

/// A namespaced object by namespace and name.
pub type Key = (String, String);

type Labels = BTreeMap<String, String>;

/// Per namespace: the selectors of its Services and the labels of its pods; per Service,
/// the pods it selects, and per pod, the Services selecting it.
#[derive(Debug, Default)]
pub struct Members {
    selectors: HashMap<String, HashMap<String, Labels>>,
    pods: HashMap<String, HashMap<String, Labels>>,
    selected: HashMap<Key, BTreeSet<String>>,
    selecting: HashMap<Key, BTreeSet<String>>,
}

fn key_of<K: ResourceExt>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

impl Members {
    /// Records the pod as it is now; returns the Services that selected it before or
    /// select it now (each needs a reconcile).
    pub fn set_pod(&mut self, pod: &Pod) -> BTreeSet<Key> {
        let (ns, name) = key_of(pod);
        let labels = pod.labels().clone();
        let now: BTreeSet<String> = (self.selectors.get(&ns).into_iter().flatten())
            .filter(|(_, sel)| kinet_selectors::set_matches(sel, &labels))
            .map(|(svc, _)| svc.clone())
            .collect();
        self.pods
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), labels);
        let before = self.link_pod(&ns, &name, now.clone());
        before
            .union(&now)
            .map(|s| (ns.clone(), s.clone()))
            .collect()
    }

    /// Forgets a deleted pod; returns the Services that selected it.
    pub fn remove_pod(&mut self, (ns, name): &Key) -> BTreeSet<Key> {
        if let Some(pods) = self.pods.get_mut(ns) {
            pods.remove(name);
            if pods.is_empty() {
                self.pods.remove(ns);
            }
        }
        let before = self.link_pod(ns, name, BTreeSet::new());
        before.into_iter().map(|s| (ns.clone(), s)).collect()
    }

    /// Records the Service as it is now (its selector may have changed): one pass over the
    /// pods of its namespace.
    pub fn set_service(&mut self, svc: &Service) {
        let (ns, name) = key_of(svc);
        let Some(sel) = selector(svc).cloned() else {
            return self.remove_service(&(ns, name));
        };
        let now: BTreeSet<String> = (self.pods.get(&ns).into_iter().flatten())
            .filter(|(_, labels)| kinet_selectors::set_matches(&sel, *labels))
            .map(|(pod, _)| pod.clone())
            .collect();
        self.selectors
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), sel);
        self.link_service(&ns, &name, now);
    }

    /// Forgets a deleted (or selector-less) Service.
    pub fn remove_service(&mut self, (ns, name): &Key) {
        if let Some(sels) = self.selectors.get_mut(ns) {
            sels.remove(name);
            if sels.is_empty() {
                self.selectors.remove(ns);
            }
        }
        self.link_service(ns, name, BTreeSet::new());
    }

    /// The names of the pods `svc` selects.
    pub fn pods_of(&self, svc: &Key) -> impl Iterator<Item = &String> {
        self.selected.get(svc).into_iter().flatten()
    }

    /// After a relist: forgets the pods it did not hold.
    pub fn retain_pods(&mut self, listed: &BTreeSet<Key>) {
        for k in keys(&self.pods).into_iter().filter(|k| !listed.contains(k)) {
            self.remove_pod(&k);
        }
    }

    /// After a relist: forgets the Services it did not hold.
    pub fn retain_services(&mut self, listed: &BTreeSet<Key>) {
        for k in keys(&self.selectors)
            .into_iter()
            .filter(|k| !listed.contains(k))
        {
            self.remove_service(&k);
        }
    }

    /// Sets the Services selecting a pod to `now`; returns those before.
    fn link_pod(&mut self, ns: &str, pod: &str, now: BTreeSet<String>) -> BTreeSet<String> {
        let key = (ns.to_string(), pod.to_string());
        let before = self.selecting.remove(&key).unwrap_or_default();
        for gone in before.difference(&now) {
            remove_from(&mut self.selected, (ns.to_string(), gone.clone()), pod);
        }
        for svc in &now {
            (self
                .selected
                .entry((ns.to_string(), svc.clone()))
                .or_default())
            .insert(pod.to_string());
        }
        if !now.is_empty() {
            self.selecting.insert(key, now);
        }
        before
    }

    /// Sets the pods a Service selects to `now`.
    fn link_service(&mut self, ns: &str, svc: &str, now: BTreeSet<String>) {
        let key = (ns.to_string(), svc.to_string());
        let before = self.selected.remove(&key).unwrap_or_default();
        for gone in before.difference(&now) {
            remove_from(&mut self.selecting, (ns.to_string(), gone.clone()), svc);
        }
        for pod in &now {
            (self
                .selecting
                .entry((ns.to_string(), pod.clone()))
                .or_default())
            .insert(svc.to_string());
        }
        if !now.is_empty() {
            self.selected.insert(key, now);
        }
    }
}

fn remove_from(index: &mut HashMap<Key, BTreeSet<String>>, key: Key, name: &str) {
    if let Some(names) = index.get_mut(&key) {
        names.remove(name);
        if names.is_empty() {
            index.remove(&key);
        }
    }
}

fn keys(by_ns: &HashMap<String, HashMap<String, Labels>>) -> Vec<Key> {
    by_ns
        .iter()
        .flat_map(|(ns, names)| names.keys().map(|n| (ns.clone(), n.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, selector: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"selector": selector},
        }))
        .unwrap()
    }

    fn pod(ns: &str, name: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"namespace": ns, "name": name, "labels": labels}}),
        )
        .unwrap()
    }

    fn keys(ks: &[(&str, &str)]) -> BTreeSet<Key> {
        ks.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn pods_of(m: &Members, ns: &str, svc: &str) -> Vec<String> {
        m.pods_of(&(ns.into(), svc.into())).cloned().collect()
    }

    #[test]
    fn a_pod_change_names_the_services_selecting_it_before_and_after() {
        let mut m = Members::default();
        m.set_service(&svc("a", "web", json!({"app": "web"})));
        m.set_service(&svc("a", "all", json!({"tier": "x"})));
        m.set_service(&svc("b", "web", json!({"app": "web"})));
        let web = json!({"app": "web", "tier": "x"});
        assert_eq!(
            m.set_pod(&pod("a", "p1", web.clone())),
            keys(&[("a", "all"), ("a", "web")]),
            "only its namespace's Services"
        );
        assert_eq!(pods_of(&m, "a", "web"), ["p1"]);
        assert!(pods_of(&m, "b", "web").is_empty());
        // Relabelled out of web: web (before) and all (now) both hear of it.
        assert_eq!(
            m.set_pod(&pod("a", "p1", json!({"tier": "x"}))),
            keys(&[("a", "all"), ("a", "web")])
        );
        assert!(pods_of(&m, "a", "web").is_empty());
        // A pod no Service selects touches nothing.
        assert!(m.set_pod(&pod("a", "p2", json!({"app": "db"}))).is_empty());
        assert_eq!(
            m.remove_pod(&("a".into(), "p1".into())),
            keys(&[("a", "all")])
        );
        assert!(pods_of(&m, "a", "all").is_empty());
        assert!(m.remove_pod(&("a".into(), "gone".into())).is_empty());
    }

    #[test]
    fn a_service_finds_the_pods_known_before_it_and_follows_its_selector() {
        let mut m = Members::default();
        m.set_pod(&pod("a", "p1", json!({"app": "web"})));
        m.set_pod(&pod("a", "p2", json!({"app": "db"})));
        m.set_pod(&pod("b", "p3", json!({"app": "web"})));
        m.set_service(&svc("a", "s", json!({"app": "web"})));
        assert_eq!(pods_of(&m, "a", "s"), ["p1"]);
        m.set_service(&svc("a", "s", json!({"app": "db"})));
        assert_eq!(pods_of(&m, "a", "s"), ["p2"]);
        assert_eq!(m.set_pod(&pod("a", "p1", json!({"app": "web"}))), keys(&[]));
        // Without a selector it selects nothing, as when deleted.
        m.set_service(&svc("a", "s", json!({})));
        assert!(pods_of(&m, "a", "s").is_empty());
        assert!(m.selectors.is_empty());
        m.set_service(&svc("a", "s", json!({"app": "db"})));
        m.remove_service(&("a".into(), "s".into()));
        assert!(pods_of(&m, "a", "s").is_empty());
        assert_eq!(m.set_pod(&pod("a", "p2", json!({"app": "db"}))), keys(&[]));
        // A relist that no longer holds p1 or the Service forgets them.
        m.set_service(&svc("a", "s", json!({"app": "web"})));
        m.retain_pods(&keys(&[("a", "p2"), ("b", "p3")]));
        assert!(pods_of(&m, "a", "s").is_empty());
        m.set_pod(&pod("a", "p1", json!({"app": "web"})));
        assert_eq!(pods_of(&m, "a", "s"), ["p1"]);
        m.retain_services(&keys(&[]));
        assert!(pods_of(&m, "a", "s").is_empty());
        assert!(m.set_pod(&pod("a", "p1", json!({"app": "web"}))).is_empty());
    }
}
