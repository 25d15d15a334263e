//! What the `kube::runtime::Controller` loops share: driving a controller with the common error
//! policy, the context of the workload loops, status writes, and the watch-and-wake reflector
//! that add-ons outside this crate (the ingress controller) use too.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::Controller;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::events::Recorder;

/// The context of the workload loops: the API and where they report Events.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
}

impl Ctx {
    /// A context whose Events name `component` as their source.
    pub(crate) fn new(client: &Client, component: &str) -> Arc<Ctx> {
        Arc::new(Ctx {
            client: client.clone(),
            recorder: Recorder::new(client.clone(), component),
        })
    }
}

/// Drives `controller` until its watches end, reconciling each object with `reconcile`. A
/// failed reconcile is logged and retried after `retry`.
pub(crate) async fn run_controller<K, C, Fut, E>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<C>) -> Fut,
    ctx: Arc<C>,
    retry: Duration,
) where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    controller
        .run(
            reconcile,
            move |_, e, _| {
                tracing::warn!(controller = name, error = %e, "reconcile failed, retrying");
                Action::requeue(retry)
            },
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(controller = name, error = %e, "reconcile");
            }
        })
        .await;
}

/// Merge-patches `status` into the status subresource of `obj`.
pub(crate) async fn write_status<K, S>(client: &Client, obj: &K, status: &S) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    S: Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Writes `status` unless `current` already is exactly that, so a steady object is not
/// rewritten (and its watchers are not woken) on every reconcile.
pub(crate) async fn patch_status_if_changed<K, S>(
    client: &Client,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    S: Serialize + PartialEq,
{
    patch_status(client, obj, current, status, None).await
}

/// Like [`patch_status_if_changed`], but only over the revision of `obj` that `status` was
/// computed from (a resourceVersion precondition: a conflict retries the reconcile), for a
/// status that others write too.
pub(crate) async fn patch_status_over<K, S>(
    client: &Client,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    S: Serialize + PartialEq,
{
    patch_status(client, obj, current, status, obj.resource_version()).await
}

async fn patch_status<K, S>(
    client: &Client,
    obj: &K,
    current: Option<&S>,
    status: &S,
    revision: Option<String>,
) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    let mut body = json!({ "status": status });
    // A merge patch keeps the map keys it does not name: those `status` dropped are nulled.
    if let Some(old) = current.and_then(|c| serde_json::to_value(c).ok()) {
        null_removed(&old, &mut body["status"]);
    }
    if let Some(rv) = revision {
        body["metadata"] = json!({ "resourceVersion": rv });
    }
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(body),
    )
    .await?;
    Ok(())
}

/// Sets to null each key of an object in `old` that the same object in `new` lacks.
fn null_removed(old: &serde_json::Value, new: &mut serde_json::Value) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object_mut()) else {
        return;
    };
    for (key, was) in old {
        match new.get_mut(key) {
            Some(now) => null_removed(was, now),
            None => {
                new.insert(key.clone(), serde_json::Value::Null);
            }
        }
    }
}

/// A reflector store of `api` that wakes `wake` on every change: the loops that recompute a
/// whole pass from their stores (scheduler, LoadBalancer allocator, the ingress controller)
/// share it. Watch errors are logged and retried with backoff.
pub fn reflect_and_wake<K>(
    api: Api<K>,
    config: kube::runtime::watcher::Config,
    wake: &Arc<tokio::sync::Notify>,
) -> kube::runtime::reflector::Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect_feed_and_wake(api, config, wake, |_| {})
}

/// [`reflect_and_wake`] that also hands each event to `feed` (after the store took it, before
/// the wake), for a loop that keeps its own index of the objects.
pub fn reflect_feed_and_wake<K>(
    api: Api<K>,
    config: kube::runtime::watcher::Config,
    wake: &Arc<tokio::sync::Notify>,
    mut feed: impl FnMut(&kube::runtime::watcher::Event<K>) + Send + 'static,
) -> kube::runtime::reflector::Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    // Held weakly: once the loop that owns `wake` is gone (a supervised restart), the watch
    // ends at its next event instead of outliving it.
    let wake = Arc::downgrade(wake);
    tokio::spawn(
        stream
            .take_while(move |event| {
                match event {
                    Ok(ev) => feed(ev),
                    Err(e) => {
                        tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying")
                    }
                }
                let alive = wake.upgrade().map(|w| w.notify_one()).is_some();
                futures::future::ready(alive)
            })
            .for_each(|_| futures::future::ready(())),
    );
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_status_dropped_are_nulled_for_the_merge_patch() {
        let old = json!({"a": 1, "pods": {"x": "t", "y": "t"}, "list": [1], "gone": {"z": 1}});
        let mut new = json!({"a": 2, "pods": {"y": "t"}, "list": []});
        null_removed(&old, &mut new);
        assert_eq!(
            new,
            json!({"a": 2, "pods": {"x": null, "y": "t"}, "list": [], "gone": null})
        );
    }
}
