//! The ConfigMaps and Secrets the node's pods read, watched once for the whole node (as the
//! kubelet's watch-based configMap and secret managers do) instead of fetched per pod: pod
//! workers read them from the cache and hear which object changed.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::broadcast;

/// Changes queued per worker before it is told it fell behind (and refreshes everything).
const BACKLOG: usize = 256;

/// An object that was added, changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    ConfigMap { namespace: String, name: String },
    Secret { namespace: String, name: String },
}

/// The node's cache of ConfigMaps and Secrets.
pub struct Objects {
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    changes: broadcast::Sender<Changed>,
}

impl Objects {
    /// Starts the watches (in the background, retried with back-off).
    pub fn watch(client: &Client) -> Objects {
        let (changes, _) = broadcast::channel(BACKLOG);
        let config_maps = reflect(client, changes.clone(), |namespace, name| {
            Changed::ConfigMap { namespace, name }
        });
        let secrets = reflect(client, changes.clone(), |namespace, name| Changed::Secret {
            namespace,
            name,
        });
        Objects {
            config_maps,
            secrets,
            changes,
        }
    }

    /// Tells of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    /// The named ConfigMaps of `namespace` that exist.
    pub async fn config_maps(
        &self,
        client: &Client,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ConfigMap>, kube::Error> {
        lookup(&self.config_maps, client, namespace, names).await
    }

    /// The named Secrets of `namespace` that exist.
    pub async fn secrets(
        &self,
        client: &Client,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, Secret>, kube::Error> {
        lookup(&self.secrets, client, namespace, names).await
    }
}

/// A reflector of every `K`, announcing each object it touches as `changed(ns, name)`.
fn reflect<K>(
    client: &Client,
    changes: broadcast::Sender<Changed>,
    changed: fn(String, String) -> Changed,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .touched_objects();
    tokio::spawn(stream.for_each(move |object| {
        if let Ok(o) = object {
            // No receiver (no pod with volumes yet) is fine.
            let _ = changes.send(changed(o.namespace().unwrap_or_default(), o.name_any()));
        }
        futures::future::ready(())
    }));
    store
}

/// The objects of `names` in `namespace` from the cache, once it has synced. A name the
/// cache lacks is asked of the API server, so an object created just before its pod is
/// not reported missing while its watch event is on the way.
async fn lookup<K>(
    cache: &Store<K>,
    client: &Client,
    namespace: &str,
    names: &[String],
) -> Result<BTreeMap<String, K>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let _ = cache.wait_until_ready().await;
    let mut out = BTreeMap::new();
    for name in names {
        let cached = cache.get(&ObjectRef::new(name).within(namespace));
        let object = match cached {
            Some(o) => Some((*o).clone()),
            None => {
                Api::<K>::namespaced(client.clone(), namespace)
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
