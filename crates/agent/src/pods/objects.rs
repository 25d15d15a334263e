//! The ConfigMaps and Secrets the node's pods name, each watched by name for as long as a
//! pod refers to it, as the kubelet's watch-based configMap and secret managers do
//! (`pkg/kubelet/util/manager/watch_based_manager.go`). The Node authorizer lets an agent
//! read only the objects its pods reference, so a node-wide watch would be refused; a watch
//! with a `metadata.name` field selector names its object and passes. Pod workers read from
//! these caches and hear which object changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

/// Changes queued per worker before it is told it fell behind (and refreshes everything).
const BACKLOG: usize = 256;

/// A ConfigMap or Secret by namespace and name: one a pod refers to, or one that was added,
/// changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Changed {
    ConfigMap { namespace: String, name: String },
    Secret { namespace: String, name: String },
}

/// The node's caches of the ConfigMaps and Secrets its pods refer to.
pub struct Objects {
    client: Client,
    changes: broadcast::Sender<Changed>,
    watches: Mutex<Watches>,
}

#[derive(Default)]
struct Watches {
    referrers: Referrers,
    config_maps: HashMap<(String, String), Watch<ConfigMap>>,
    secrets: HashMap<(String, String), Watch<Secret>>,
}

/// One object's cache, its watch stopped when dropped.
struct Watch<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    task: AbortHandle,
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Watch<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Objects {
    /// No watches yet: [`Objects::refer`] starts them.
    pub fn new(client: Client) -> Objects {
        let (changes, _) = broadcast::channel(BACKLOG);
        Objects {
            client,
            changes,
            watches: Mutex::default(),
        }
    }

    /// Tells of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    /// Makes `objects` the ones pod `uid` refers to (none once it is gone): watches start for
    /// objects no pod referred to, and stop for those no pod refers to any more.
    pub fn refer(&self, uid: &str, objects: BTreeSet<Changed>) {
        let mut w = self.watches.lock().expect("watches lock");
        let (started, stopped) = w.referrers.set(uid, objects);
        for object in stopped {
            // Dropping a watch stops it.
            match object {
                Changed::ConfigMap { namespace, name } => {
                    w.config_maps.remove(&(namespace, name));
                }
                Changed::Secret { namespace, name } => {
                    w.secrets.remove(&(namespace, name));
                }
            }
        }
        for object in started {
            match object {
                Changed::ConfigMap { namespace, name } => {
                    let watch = self.watch(&namespace, &name, |namespace, name| {
                        Changed::ConfigMap { namespace, name }
                    });
                    w.config_maps.insert((namespace, name), watch);
                }
                Changed::Secret { namespace, name } => {
                    let watch = self.watch(&namespace, &name, |namespace, name| Changed::Secret {
                        namespace,
                        name,
                    });
                    w.secrets.insert((namespace, name), watch);
                }
            }
        }
    }

    /// The named ConfigMaps of `namespace` that exist.
    pub async fn config_maps(
        &self,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ConfigMap>, kube::Error> {
        self.lookup(namespace, names, |w, key| {
            w.config_maps.get(key).map(|w| w.store.clone())
        })
        .await
    }

    /// The named Secrets of `namespace` that exist.
    pub async fn secrets(
        &self,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, Secret>, kube::Error> {
        self.lookup(namespace, names, |w, key| {
            w.secrets.get(key).map(|w| w.store.clone())
        })
        .await
    }

    /// A reflector of the one object `namespace/name`, announcing its changes.
    fn watch<K>(
        &self,
        namespace: &str,
        name: &str,
        changed: fn(String, String) -> Changed,
    ) -> Watch<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let stream =
            reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
        let changes = self.changes.clone();
        let task = tokio::spawn(stream.for_each(move |object| {
            if let Ok(o) = object {
                // No receiver (no pod with volumes yet) is fine.
                let _ = changes.send(changed(o.namespace().unwrap_or_default(), o.name_any()));
            }
            futures::future::ready(())
        }));
        Watch {
            store,
            task: task.abort_handle(),
        }
    }

    /// The objects of `names` in `namespace` from their caches. A name whose cache lacks it
    /// (not synced yet, or no pod refers to it) is asked of the API server, so an object
    /// created just before its pod is not reported missing while its watch starts.
    async fn lookup<K>(
        &self,
        namespace: &str,
        names: &[String],
        cache: impl Fn(&Watches, &(String, String)) -> Option<Store<K>>,
    ) -> Result<BTreeMap<String, K>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + 'static,
    {
        let mut out = BTreeMap::new();
        for name in names {
            let key = (namespace.to_string(), name.clone());
            let store = cache(&self.watches.lock().expect("watches lock"), &key);
            let cached = store.and_then(|s| s.get(&ObjectRef::new(name).within(namespace)));
            let object = match cached {
                Some(o) => Some((*o).clone()),
                None => {
                    Api::<K>::namespaced(self.client.clone(), namespace)
                        .get_opt(name)
                        .await?
                }
            };
            if let Some(o) = object {
                out.insert(name.clone(), o);
            }
        }
        Ok(out)
    }
}

/// Which pods refer to which objects.
#[derive(Debug, Default)]
struct Referrers {
    by_object: BTreeMap<Changed, BTreeSet<String>>,
    by_pod: BTreeMap<String, BTreeSet<Changed>>,
}

impl Referrers {
    /// Makes `objects` the ones `pod` refers to; returns the objects no pod referred to
    /// before, and those no pod refers to any more.
    fn set(&mut self, pod: &str, objects: BTreeSet<Changed>) -> (Vec<Changed>, Vec<Changed>) {
        let before = self.by_pod.remove(pod).unwrap_or_default();
        let mut stopped = Vec::new();
        for gone in before.difference(&objects) {
            let pods = self.by_object.get_mut(gone).expect("referrers agree");
            pods.remove(pod);
            if pods.is_empty() {
                self.by_object.remove(gone);
                stopped.push(gone.clone());
            }
        }
        let mut started = Vec::new();
        for new in objects.difference(&before) {
            let pods = self.by_object.entry(new.clone()).or_default();
            if pods.is_empty() {
                started.push(new.clone());
            }
            pods.insert(pod.to_string());
        }
        if !objects.is_empty() {
            self.by_pod.insert(pod.to_string(), objects);
        }
        (started, stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Changed {
        Changed::ConfigMap {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn secret(name: &str) -> Changed {
        Changed::Secret {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn an_object_is_watched_while_some_pod_refers_to_it() {
        let mut r = Referrers::default();
        let set = |items: &[Changed]| items.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(
            r.set("a", set(&[cm("x"), secret("x")])),
            (vec![cm("x"), secret("x")], vec![])
        );
        assert_eq!(
            r.set("b", set(&[cm("x"), cm("y")])),
            (vec![cm("y")], vec![])
        );
        // The same references again change nothing.
        assert_eq!(r.set("b", set(&[cm("x"), cm("y")])), (vec![], vec![]));
        assert_eq!(r.set("a", set(&[cm("x")])), (vec![], vec![secret("x")]));
        assert_eq!(
            r.set("a", BTreeSet::new()),
            (vec![], vec![]),
            "b still refers to x"
        );
        assert_eq!(
            r.set("b", BTreeSet::new()),
            (vec![], vec![cm("x"), cm("y")])
        );
        assert!(r.by_object.is_empty() && r.by_pod.is_empty());
    }
}
