//! The endpoints and endpointslice controllers: every Service with a selector gets Endpoints and
//! EndpointSlices listing the pods it selects.
//!
//! Watch events of Services, Pods, EndpointSlices and Endpoints are mapped to Service keys and
//! queued (a pod to the Services selecting it, from the [`members`] index, so one pod's change
//! costs the selectors of its namespace, not a pass over everything); a worker reconciles
//! each key from the reflector stores (its Service, the pods the index says it selects) and the
//! Service's slices from the slice watch ([`owned`]), or a fresh list of them while a write of
//! its own is not in the watch yet (so a slice is never made twice). The store is updated before a key is queued, so a pod turning Ready is seen by
//! the reconcile it triggers. The desired content is computed in [`desired`] and [`slices`].

pub mod desired;
pub mod lenient;
pub mod members;
pub mod owned;
pub mod slices;
#[cfg(test)]
mod tests;
pub mod trigger;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};

use crate::events::Recorder;
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

pub use desired::desired_endpoints;
use members::Members;
use owned::OwnedSlices;
pub use slices::{desired_slices, SliceChanges};

/// A Service by namespace and name.
type Key = (String, String);

/// How many Services are reconciled at once.
const PARALLEL: usize = 16;

struct Ctx {
    /// As `endpoint-controller` and `endpointslice-controller`: upstream's two loops.
    endpoints_client: Client,
    slices_client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    members: Arc<Mutex<Members>>,
    slices: Arc<Mutex<OwnedSlices>>,
    triggers: trigger::TriggerTimes,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the loop, with a skip list of its own.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    run_with(client.clone(), client, Arc::default()).await
}

/// Runs the loop, writing Endpoints with `client` and EndpointSlices with `slices_client`,
/// recording what it leaves out in `skips`.
pub async fn run_with(
    client: Client,
    slices_client: Client,
    skips: Arc<lenient::Skips>,
) -> Result<(), crate::LoopError> {
    let (services, svc_writer) = reflector::store::<Service>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (tx, mut rx) = unbounded_channel::<Key>();
    let cfg = watcher::Config::default();
    // Each object is decoded on its own, so one that a typed client cannot read does not stop
    // Endpoints for every other Service.
    let recorder = Recorder::new(client.clone(), "endpoint-controller");
    let members = Arc::new(Mutex::new(Members::default()));

    let svc_events = reflector::reflector(
        svc_writer,
        lenient::watch::<Service>(&client, cfg.clone(), recorder.clone(), skips.clone()),
    )
    .default_backoff();
    let svc_task = {
        let (tx, client, services) = (tx.clone(), client.clone(), services.clone());
        let members = members.clone();
        let listed = Arc::new(Mutex::new(BTreeSet::<Key>::new()));
        svc_events.try_for_each(move |event| {
            let (tx, client, services) = (tx.clone(), client.clone(), services.clone());
            let (members, listed) = (members.clone(), listed.clone());
            async move {
                match event {
                    watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                        lock(&members).set_service(&s);
                        listed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key_of(&s));
                        send(&tx, key_of(&s))
                    }
                    watcher::Event::Delete(s) => {
                        lock(&members).remove_service(&key_of(&s));
                        send(&tx, key_of(&s))
                    }
                    // After a (re)list, Endpoints whose Service vanished meanwhile get cleaned up.
                    watcher::Event::InitDone => {
                        let listed =
                            std::mem::take(&mut *listed.lock().unwrap_or_else(|e| e.into_inner()));
                        lock(&members).retain_services(&listed);
                        enqueue_leftovers(&client, &services, &tx).await
                    }
                    watcher::Event::Init => {
                        listed.lock().unwrap_or_else(|e| e.into_inner()).clear()
                    }
                }
                Ok(())
            }
        })
    };

    let pod_events = reflector::reflector(
        pod_writer,
        lenient::watch::<Pod>(&client, cfg.clone(), recorder.clone(), skips.clone()),
    )
    .default_backoff();
    let pod_task = {
        let (tx, services, members) = (tx.clone(), services.clone(), members.clone());
        let mut listed: BTreeSet<Key> = BTreeSet::new();
        pod_events.try_for_each(move |event| {
            // The Services selecting the pod before or now: a relabelled pod leaves its old one.
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    listed.insert(key_of(&p));
                    lock(&members)
                        .set_pod(&p)
                        .into_iter()
                        .for_each(|k| send(&tx, k));
                }
                watcher::Event::Delete(p) => {
                    (lock(&members).remove_pod(&key_of(&p)).into_iter()).for_each(|k| send(&tx, k));
                }
                watcher::Event::Init => listed.clear(),
                // Pods deleted while the watch was down: forget them. The store takes a relist
                // in at once, at its end: resync everything then.
                watcher::Event::InitDone => {
                    lock(&members).retain_pods(&listed);
                    services
                        .state()
                        .iter()
                        .for_each(|s| send(&tx, key_of(s.as_ref())));
                }
            }
            futures::future::ready(Ok(()))
        })
    };

    // Someone else touching a managed slice or an Endpoints object gets it put back.
    let slice_events = lenient::watch::<EndpointSlice>(
        &slices_client,
        cfg.clone(),
        recorder.clone(),
        skips.clone(),
    )
    .default_backoff();
    let owned = Arc::new(Mutex::new(OwnedSlices::default()));
    let slice_task = {
        let (tx, owned) = (tx.clone(), owned.clone());
        slice_events.try_for_each(move |event| {
            let touched = match event {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                    lock(&owned).apply(s.clone());
                    Some(s)
                }
                watcher::Event::Delete(s) => {
                    lock(&owned).delete(&s);
                    Some(s)
                }
                watcher::Event::Init => {
                    lock(&owned).relist();
                    None
                }
                watcher::Event::InitDone => {
                    lock(&owned).relisted();
                    None
                }
            };
            let managed = touched.filter(|s| {
                s.labels().get(slices::MANAGED_BY_LABEL).map(String::as_str)
                    == Some(slices::MANAGED_BY)
            });
            let service = managed.and_then(|s| {
                let name = s.labels().get(slices::SERVICE_NAME_LABEL)?.clone();
                Some((s.namespace()?, name))
            });
            if let Some(key) = service {
                send(&tx, key);
            }
            futures::future::ready(Ok(()))
        })
    };
    let ctx_services = services.clone();
    let ep_events = lenient::watch::<Endpoints>(&client, cfg, recorder, skips).default_backoff();
    let ep_task = {
        let (tx, services) = (tx.clone(), ctx_services.clone());
        ep_events.try_for_each(move |event| {
            match event {
                // Endpoints written before their Service are left alone, as upstream does.
                watcher::Event::Apply(e)
                    if services
                        .get(
                            &ObjectRef::new(&e.name_any())
                                .within(&e.namespace().unwrap_or_default()),
                        )
                        .is_some() =>
                {
                    send(&tx, key_of(&e))
                }
                watcher::Event::Delete(e) => send(&tx, key_of(&e)),
                _ => {}
            }
            futures::future::ready(Ok(()))
        })
    };

    let ctx = Arc::new(Ctx {
        endpoints_client: client,
        slices_client,
        services,
        pods,
        members,
        slices: owned,
        triggers: trigger::TriggerTimes::default(),
    });
    let worker = async move {
        // Acting on a half-filled store would drop endpoints for pods not yet listed.
        ctx.services.wait_until_ready().await?;
        ctx.pods.wait_until_ready().await?;
        while let Some(first) = rx.recv().await {
            let mut batch = BTreeSet::from([first]);
            while let Ok(k) = rx.try_recv() {
                batch.insert(k);
            }
            let (keys, started) = (batch.len(), std::time::Instant::now());
            futures::stream::iter(batch)
                .for_each_concurrent(PARALLEL, |key| {
                    let ctx = ctx.clone();
                    let tx = tx.clone();
                    async move {
                        if let Err(e) = reconcile(&ctx, &key).await {
                            tracing::warn!(service = ?key, error = %e, "endpoints: retrying");
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                send(&tx, key);
                            });
                        }
                    }
                })
                .await;
            tracing::debug!(keys, took = ?started.elapsed(), "endpoints: batch reconciled");
        }
        Ok::<(), crate::LoopError>(())
    };
    tokio::try_join!(
        async { svc_task.await.map_err(crate::LoopError::from) },
        async { pod_task.await.map_err(crate::LoopError::from) },
        async { slice_task.await.map_err(crate::LoopError::from) },
        async { ep_task.await.map_err(crate::LoopError::from) },
        worker,
    )?;
    Ok(())
}

fn key_of<K: ResourceExt>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

fn send(tx: &UnboundedSender<Key>, key: Key) {
    // The worker only stops when the whole loop does.
    let _ = tx.send(key);
}

async fn enqueue_leftovers(client: &Client, services: &Store<Service>, tx: &UnboundedSender<Key>) {
    match Api::<Endpoints>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .map(key_of)
            .filter(|(ns, name)| services.get(&ObjectRef::new(name).within(ns)).is_none())
            .for_each(|k| send(tx, k)),
        Err(e) => tracing::warn!(error = %e, "endpoints: listing leftovers"),
    }
}

fn ignore_gone(r: kube::Result<()>) -> kube::Result<()> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        // A Terminating namespace takes no new objects; the namespace controller empties it.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        other => other,
    }
}

async fn reconcile(ctx: &Ctx, key: &Key) -> kube::Result<()> {
    let done = write(ctx, key).await;
    if done.is_err() {
        // The trigger time computed for this pass was not written: report it again next pass.
        ctx.triggers.forget(key);
    }
    done
}

/// The Service's slices: from the watch, or listed live while the watch lags the loop's own
/// writes.
async fn slices_of(
    ctx: &Ctx,
    api: &Api<EndpointSlice>,
    key: &Key,
) -> kube::Result<Vec<EndpointSlice>> {
    if let Some(cached) = lock(&ctx.slices).of(key) {
        return Ok(cached);
    }
    let selector = format!("{}={}", slices::SERVICE_NAME_LABEL, key.1);
    let live = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    lock(&ctx.slices).listed_live(key, &live);
    Ok(live)
}

async fn write(ctx: &Ctx, key: &Key) -> kube::Result<()> {
    let (ns, name) = key;
    let svc = ctx.services.get(&ObjectRef::new(name).within(ns));
    let endpoints: Api<Endpoints> = Api::namespaced(ctx.endpoints_client.clone(), ns);
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.slices_client.clone(), ns);
    // Both reads at once: the slice write below is what kube-proxy waits for.
    let (existing_slices, current_endpoints) =
        tokio::try_join!(slices_of(ctx, &slice_api, key), endpoints.get_opt(name),)?;
    let Some(svc) = svc.clone().filter(|s| desired::selector(s).is_some()) else {
        ctx.triggers.forget(&(ns.clone(), name.clone()));
        // No Service: its Endpoints go. A selector-less Service keeps hand-written Endpoints.
        if svc.is_none() {
            ignore_gone(
                endpoints
                    .delete(name, &DeleteParams::default())
                    .await
                    .map(drop),
            )?;
        }
        let gone = existing_slices
            .into_iter()
            .filter(|s| slices::managed(s, name));
        let changes = SliceChanges {
            delete: gone.collect(),
            ..SliceChanges::default()
        };
        return write_slices(ctx, key, &slice_api, changes).await;
    };
    // The index may lag the store by an event (that event queues this Service again).
    let names: Vec<String> = lock(&ctx.members)
        .pods_of(&(ns.clone(), name.clone()))
        .cloned()
        .collect();
    let pods: Vec<Arc<Pod>> = names
        .iter()
        .filter_map(|pod| ctx.pods.get(&ObjectRef::new(pod).within(ns)))
        .filter(|p| desired::selects(&svc, p))
        .collect();
    let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();

    let triggered = ctx
        .triggers
        .compute(&(ns.clone(), name.clone()), &svc, &pods);
    // Slices first: they are what the proxy and DNS follow; Endpoints are for older clients.
    // A Service being deleted (foreground) must not get slices back while GC removes them.
    if svc.metadata.deletion_timestamp.is_none() {
        let mut changes = desired_slices(&svc, &pods, &existing_slices);
        for s in changes.update.iter_mut().chain(changes.create.iter_mut()) {
            trigger::stamp(&mut s.metadata.annotations, triggered);
        }
        write_slices(ctx, key, &slice_api, changes).await?;
    }
    let mut want = desired_endpoints(&svc, &pods);
    trigger::stamp(&mut want.metadata.annotations, triggered);
    match current_endpoints {
        None => ignore_gone(
            endpoints
                .create(&PostParams::default(), &want)
                .await
                .map(drop),
        )?,
        Some(have) if desired::endpoints_differ(&have, &want) => {
            let mut next = have.clone();
            next.subsets = want.subsets;
            next.metadata.labels = want.metadata.labels;
            trigger::stamp(&mut next.metadata.annotations, triggered);
            endpoints
                .replace(name, &PostParams::default(), &next)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

async fn write_slices(
    ctx: &Ctx,
    key: &Key,
    slice_api: &Api<EndpointSlice>,
    changes: SliceChanges,
) -> kube::Result<()> {
    let done = apply_slices(ctx, key, slice_api, changes).await;
    if done.is_err() {
        lock(&ctx.slices).unsure(key);
    }
    done
}

/// Sends the writes, noting each answered one for [`OwnedSlices`].
async fn apply_slices(
    ctx: &Ctx,
    key: &Key,
    slice_api: &Api<EndpointSlice>,
    changes: SliceChanges,
) -> kube::Result<()> {
    let params = PostParams::default();
    for s in &changes.delete {
        let name = s.name_any();
        ignore_gone(
            slice_api
                .delete(&name, &DeleteParams::default())
                .await
                .map(drop),
        )?;
        lock(&ctx.slices).deleted(key, &name);
    }
    for s in &changes.update {
        let written = slice_api.replace(&s.name_any(), &params, s).await?;
        lock(&ctx.slices).wrote(key, &written);
    }
    for s in &changes.create {
        match slice_api.create(&params, s).await {
            Ok(written) => lock(&ctx.slices).wrote(key, &written),
            other => ignore_gone(other.map(drop))?,
        }
    }
    Ok(())
}
