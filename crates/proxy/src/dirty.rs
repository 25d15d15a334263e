//! Which Services a sync must look at, from the keys the watches touched: the Services
//! themselves, and the owners (the `kubernetes.io/service-name` label) of the touched
//! EndpointSlices, before and after the change. An index from each Service to its slices
//! then finds their objects without a walk over the store, so the render step looks only at
//! the Services named. The rest of a pass (store snapshots, health-check ports, LoadBalancer
//! announcements) still reads every Service.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_rules::ServiceKey;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::reflect::Key;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service an EndpointSlice belongs to, if it says.
fn owner(slice: &EndpointSlice) -> Option<ServiceKey> {
    let m = &slice.metadata;
    let svc = m.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((m.namespace.clone().unwrap_or_default(), svc.clone()))
}

/// A Service named by the watch, with its object and all its slices now (`None`: gone).
pub type ServiceNow = (ServiceKey, Option<(Arc<Service>, Vec<Arc<EndpointSlice>>)>);

/// Each EndpointSlice's Service, and each Service's slices.
#[derive(Debug, Default)]
pub struct SliceIndex {
    owners: HashMap<Key, ServiceKey>,
    slices: HashMap<ServiceKey, BTreeSet<String>>,
}

impl SliceIndex {
    /// An index of all of `slices`.
    pub fn of<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> SliceIndex {
        let mut index = SliceIndex::default();
        for s in slices {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            index.update(key, Some(s));
        }
        index
    }

    /// Records that the slice at `key` is now `slice` (`None`: deleted); returns the
    /// Services it belonged to before and belongs to now.
    pub fn update(&mut self, key: Key, slice: Option<&EndpointSlice>) -> Vec<ServiceKey> {
        let now = slice.and_then(owner);
        let before = match &now {
            Some(svc) => self.owners.insert(key.clone(), svc.clone()),
            None => self.owners.remove(&key),
        };
        if let Some(b) = before.as_ref().filter(|b| Some(*b) != now.as_ref()) {
            if let Some(names) = self.slices.get_mut(b) {
                names.remove(&key.1);
                if names.is_empty() {
                    self.slices.remove(b);
                }
            }
        }
        if let Some(n) = &now {
            self.slices.entry(n.clone()).or_default().insert(key.1);
        }
        let mut touched: Vec<ServiceKey> = before.into_iter().chain(now).collect();
        touched.dedup();
        touched
    }

    /// The names of a Service's slices, in name order.
    pub fn slices_of(&self, svc: &ServiceKey) -> impl Iterator<Item = &String> {
        self.slices.get(svc).into_iter().flatten()
    }
}

fn get<K>(store: &Store<K>, (ns, name): &Key) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store.get(&ObjectRef::new(name).within(ns))
}

/// The Services named by `services` and by the owners of `slices` (touched keys), each with
/// its current object and slices from the stores (`None`: gone); updates `index`.
pub fn touched_services(
    index: &mut SliceIndex,
    services: HashSet<Key>,
    slices: HashSet<Key>,
    service_store: &Store<Service>,
    slice_store: &Store<EndpointSlice>,
) -> Vec<ServiceNow> {
    let mut dirty: BTreeSet<ServiceKey> = services.into_iter().collect();
    for key in slices {
        let now = get(slice_store, &key);
        dirty.extend(index.update(key, now.as_deref()));
    }
    dirty
        .into_iter()
        .map(|svc| {
            let now = get(service_store, &svc).map(|s| {
                let own = index
                    .slices_of(&svc)
                    .filter_map(|name| get(slice_store, &(svc.0.clone(), name.clone())))
                    .collect();
                (s, own)
            });
            (svc, now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, svc: &str) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name,
                         "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "endpoints": [],
        }))
        .unwrap()
    }

    fn k(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[test]
    fn a_slice_names_its_service_before_and_after_a_change() {
        let mut index = SliceIndex::of(&[slice("a-1", "a"), slice("a-2", "a")]);
        let names = |i: &SliceIndex, svc| i.slices_of(&k(svc)).cloned().collect::<Vec<_>>();
        assert_eq!(names(&index, "a"), ["a-1", "a-2"]);
        // Relabelled to another Service: both are touched.
        assert_eq!(
            index.update(k("a-2"), Some(&slice("a-2", "b"))),
            [k("a"), k("b")]
        );
        assert_eq!(names(&index, "a"), ["a-1"]);
        assert_eq!(names(&index, "b"), ["a-2"]);
        // Changed in place: its Service once.
        assert_eq!(index.update(k("a-2"), Some(&slice("a-2", "b"))), [k("b")]);
        // Deleted, or never known.
        assert_eq!(index.update(k("a-1"), None), [k("a")]);
        assert!(names(&index, "a").is_empty());
        assert!(index.update(k("x"), None).is_empty());
    }

    #[test]
    fn touched_keys_give_their_services_with_all_their_slices() {
        use kube::runtime::{reflector, watcher};
        let svc = |name: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": name}})).unwrap()
        };
        let (services, mut svc_writer) = reflector::store::<Service>();
        let (slices, mut slice_writer) = reflector::store::<EndpointSlice>();
        for name in ["a", "b", "c"] {
            svc_writer.apply_watcher_event(&watcher::Event::Apply(svc(name)));
        }
        let all = [slice("a-1", "a"), slice("a-2", "a"), slice("b-1", "b")];
        for s in &all {
            slice_writer.apply_watcher_event(&watcher::Event::Apply(s.clone()));
        }
        let mut index = SliceIndex::of(&all);
        let names = |got: &[ServiceNow]| {
            got.iter()
                .map(|(key, now)| {
                    let slices = now
                        .iter()
                        .flat_map(|(_, own)| own)
                        .map(|s| s.metadata.name.clone().unwrap());
                    (key.1.clone(), slices.collect::<Vec<_>>())
                })
                .collect::<Vec<_>>()
        };

        // One slice of a changed: a alone, with both its slices.
        let got = touched_services(
            &mut index,
            HashSet::new(),
            [k("a-2")].into(),
            &services,
            &slices,
        );
        assert_eq!(
            names(&got),
            [("a".to_string(), vec!["a-1".to_string(), "a-2".to_string()])]
        );

        // Service c named, and b's slice deleted; then b deleted.
        slice_writer.apply_watcher_event(&watcher::Event::Delete(all[2].clone()));
        let got = touched_services(
            &mut index,
            [k("c")].into(),
            [k("b-1")].into(),
            &services,
            &slices,
        );
        assert_eq!(
            names(&got),
            [("b".to_string(), vec![]), ("c".to_string(), vec![])]
        );
        svc_writer.apply_watcher_event(&watcher::Event::Delete(svc("b")));
        let got = touched_services(
            &mut index,
            [k("b")].into(),
            HashSet::new(),
            &services,
            &slices,
        );
        assert!(got[0].1.is_none(), "gone");
    }
}
