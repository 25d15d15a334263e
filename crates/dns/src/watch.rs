//! Keeps the shared view current from three API watches. Each watch event is
//! applied in place under a short write lock, so an answer reflects an API
//! change as soon as the event arrives; a relist replaces only what changed.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_dns_zone::ClusterView;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::handler::SharedView;
use crate::server::{DnsServer, Error};

/// Events applied under one write lock when they arrive together (a relist).
const BATCH: usize = 256;
/// Objects per list request.
const LIST_PAGE: u32 = 100;

type Key = (String, String);

/// How one kind of object enters and leaves the view.
pub(crate) trait Feed: Resource + ResourceExt {
    fn apply(&self, view: &mut ClusterView);
    fn remove(key: &Key, view: &mut ClusterView);
    /// Keys of this kind the view holds (lowercased).
    fn held(view: &ClusterView) -> Vec<Key>;
}

impl Feed for Service {
    fn apply(&self, view: &mut ClusterView) {
        view.upsert_service(self);
    }
    fn remove((ns, name): &Key, view: &mut ClusterView) {
        view.remove_service(ns, name);
    }
    fn held(view: &ClusterView) -> Vec<Key> {
        view.service_keys()
    }
}

impl Feed for EndpointSlice {
    fn apply(&self, view: &mut ClusterView) {
        view.upsert_slice(self);
    }
    fn remove((ns, name): &Key, view: &mut ClusterView) {
        view.remove_slice(ns, name);
    }
    fn held(view: &ClusterView) -> Vec<Key> {
        view.slice_keys()
    }
}

impl Feed for Namespace {
    fn apply(&self, view: &mut ClusterView) {
        view.add_namespace(&self.name_any());
    }
    fn remove((_, name): &Key, view: &mut ClusterView) {
        view.remove_namespace(name);
    }
    fn held(view: &ClusterView) -> Vec<Key> {
        view.namespace_names()
            .into_iter()
            .map(|n| (String::new(), n))
            .collect()
    }
}

/// Lowercased, as the view keeps names.
fn key_of<K: ResourceExt>(obj: &K) -> Key {
    let ns = obj.namespace().unwrap_or_default();
    (ns.to_ascii_lowercase(), obj.name_any().to_ascii_lowercase())
}

/// The watcher state machine's effect on the view. Objects listed during a
/// relist are applied as they come (they are current); at the end, what the
/// view held but was not listed again is removed. The view itself is the
/// record of what is known (no second copy of every key); the set of listed
/// keys lives only while a relist runs, and not at all for the first list
/// into an empty view.
pub(crate) struct Mirror<K> {
    relisting: Option<HashSet<Key>>,
    synced: bool,
    _kind: std::marker::PhantomData<fn(K)>,
}

impl<K: Feed> Mirror<K> {
    pub(crate) fn new() -> Self {
        Mirror {
            relisting: None,
            synced: false,
            _kind: std::marker::PhantomData,
        }
    }

    /// Apply one event; true when this completes the first full list.
    pub(crate) fn on_event(&mut self, view: &mut ClusterView, event: Event<K>) -> bool {
        match event {
            Event::Init => {
                let anything = !K::held(view).is_empty();
                self.relisting = anything.then(HashSet::new);
            }
            Event::InitApply(obj) => {
                obj.apply(view);
                if let Some(seen) = &mut self.relisting {
                    seen.insert(key_of(&obj));
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    for gone in K::held(view).iter().filter(|k| !seen.contains(*k)) {
                        K::remove(gone, view);
                    }
                }
                let first = !self.synced;
                self.synced = true;
                return first;
            }
            Event::Apply(obj) => obj.apply(view),
            Event::Delete(obj) => K::remove(&key_of(&obj), view),
        }
        false
    }
}

/// Start the three watches on the server's tasks; its `/ready` turns true
/// once each has listed once.
pub(crate) fn spawn(server: &mut DnsServer, client: Client, view: SharedView) {
    let sync = Sync {
        pending: Arc::new(AtomicUsize::new(3)),
        health: server.health(),
    };
    let (c, v, s) = (client.clone(), view.clone(), sync.clone());
    server.spawn(watch::<Service>(Api::all(c), v, s));
    let (c, v, s) = (client.clone(), view.clone(), sync.clone());
    server.spawn(watch::<EndpointSlice>(Api::all(c), v, s));
    server.spawn(watch::<Namespace>(Api::all(client), view, sync));
}

#[derive(Clone)]
struct Sync {
    pending: Arc<AtomicUsize>,
    health: Arc<crate::health::State>,
}

impl Sync {
    fn one_synced(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.health.synced.store(true, Ordering::Release);
            tracing::info!("dns: all watches synced");
        }
    }
}

/// Never ends while the stream lives: watch errors are retried with backoff.
async fn watch<K>(api: Api<K>, view: SharedView, sync: Sync) -> Result<(), Error>
where
    K: Feed + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let mut mirror = Mirror::<K>::new();
    // Small list pages: a page of decoded objects is the peak the initial list
    // leaves in the allocator, and 100 keeps it a fraction of a 10k-Service view.
    let config = watcher::Config::default().page_size(LIST_PAGE);
    let events = watcher::watcher(api, config)
        .default_backoff()
        .ready_chunks(BATCH);
    futures::pin_mut!(events);
    while let Some(batch) = events.next().await {
        let mut first_sync = false;
        {
            let mut view = view.write().unwrap_or_else(|p| p.into_inner());
            for event in batch {
                match event {
                    Ok(ev) => first_sync |= mirror.on_event(&mut view, ev),
                    Err(e) => {
                        tracing::warn!(error = %e, kind = %K::kind(&Default::default()), "dns watch error; retrying")
                    }
                }
            }
        }
        if first_sync {
            sync.one_synced();
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
