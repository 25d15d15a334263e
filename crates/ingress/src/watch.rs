//! The controller loop: reflectors over Ingress, IngressClass, Service, EndpointSlice and
//! Secret; every change rebuilds the route table and certificates and swaps them in (bursts
//! coalesce into one rebuild), then publishes the Ingresses' address and Sync events.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kinet_controllers::events::{object_ref, EventType, Recorder};
use kinet_controllers::runtime::reflect_and_wake;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::{watch, Notify};

use crate::certs::CertStore;
use crate::proxy::Proxy;
use crate::routes::{Objects, RouteTable};
use crate::status;

/// The Secrets `spec.tls` may name (the type the API validates to hold `tls.crt`/`tls.key`).
const TLS_SECRETS: &str = "type=kubernetes.io/tls";

/// What the loop works on.
pub struct Controller {
    pub client: Client,
    pub controller: String,
    /// `namespace/name` of the LoadBalancer Service whose address the Ingresses get.
    pub publish_service: Option<(String, String)>,
    pub proxy: Arc<Proxy>,
    pub certs: Arc<CertStore>,
    /// Set once the first table is live.
    pub synced: Arc<AtomicBool>,
}

fn refs<K>(all: &[Arc<K>]) -> Vec<&K> {
    all.iter().map(Arc::as_ref).collect()
}

#[derive(Clone)]
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

impl Controller {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        // The watches hold it weakly: when this loop is dropped, they end.
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default;
        let stores = Stores {
            ingresses: reflect_and_wake(Api::all(self.client.clone()), all(), &changed),
            classes: reflect_and_wake(Api::all(self.client.clone()), all(), &changed),
            services: reflect_and_wake(Api::all(self.client.clone()), all(), &changed),
            slices: reflect_and_wake(Api::all(self.client.clone()), all(), &changed),
            // Only TLS Secrets: no other Secret's data is held, nor wakes the loop.
            secrets: reflect_and_wake(
                Api::all(self.client.clone()),
                all().fields(TLS_SECRETS),
                &changed,
            ),
        };
        for ready in [
            stores.ingresses.wait_until_ready().await,
            stores.classes.wait_until_ready().await,
            stores.services.wait_until_ready().await,
            stores.slices.wait_until_ready().await,
            stores.secrets.wait_until_ready().await,
        ] {
            if let Err(e) = ready {
                tracing::error!(error = %e, "ingress watch ended before listing");
                return;
            }
        }
        // Status and events go out from their own task, so API writes never delay a table.
        let (live, published) = watch::channel(None);
        let publisher = Publisher {
            client: self.client.clone(),
            publish_service: self.publish_service.clone(),
            recorder: Recorder::new(self.client.clone(), "kinet-ingress"),
            synced: HashMap::new(),
        };
        tokio::spawn(publisher.run(published, stores.clone()));
        loop {
            let ingresses = stores.ingresses.state();
            let table = self.rebuild(&stores, &ingresses);
            if !self.synced.swap(true, Ordering::AcqRel) {
                tracing::info!(ingresses = table.served().len(), "ingress: routes live");
            }
            let _ = live.send(Some((table, ingresses)));
            changed.notified().await;
        }
    }

    fn rebuild(&self, stores: &Stores, ingresses: &[Arc<Ingress>]) -> Arc<RouteTable> {
        let (classes, services, slices, secrets) = (
            stores.classes.state(),
            stores.services.state(),
            stores.slices.state(),
            stores.secrets.state(),
        );
        let ingresses = refs(ingresses);
        let (classes, services, slices, secrets) = (
            refs(&classes),
            refs(&services),
            refs(&slices),
            refs(&secrets),
        );
        let table = Arc::new(RouteTable::build(
            &Objects {
                ingresses: &ingresses,
                classes: &classes,
                services: &services,
                slices: &slices,
            },
            &self.controller,
        ));
        for (host, e) in self.certs.update(&table, &secrets) {
            tracing::warn!(%host, error = %e, "TLS certificate unavailable; serving the fallback");
        }
        self.proxy.swap(table.clone());
        table
    }
}

/// A table that went live, with the Ingresses it was built from.
type Live = Option<(Arc<RouteTable>, Vec<Arc<Ingress>>)>;

/// Writes the served Ingresses' status and Sync events after each table goes live; a burst of
/// tables collapses to the latest.
struct Publisher {
    client: Client,
    publish_service: Option<(String, String)>,
    recorder: Recorder,
    /// The generation each served Ingress last got a Sync event for.
    synced: HashMap<String, i64>,
}

impl Publisher {
    async fn run(mut self, mut live: watch::Receiver<Live>, stores: Stores) {
        while live.changed().await.is_ok() {
            let latest = live.borrow_and_update().clone();
            if let Some((table, ingresses)) = latest {
                self.after_sync(&stores, &ingresses, &table).await;
            }
        }
    }

    /// Status and events of the served Ingresses, once their routes are live.
    async fn after_sync(
        &mut self,
        stores: &Stores,
        ingresses: &[Arc<Ingress>],
        table: &RouteTable,
    ) {
        let address = self.publish_service.as_ref().and_then(|(ns, name)| {
            stores
                .services
                .state()
                .into_iter()
                .find(|s| s.namespace().as_deref() == Some(ns) && &s.name_any() == name)
                .map(|s| status::addresses(&s))
        });
        let by_key: HashMap<String, &Arc<Ingress>> = ingresses
            .iter()
            .map(|i| {
                (
                    format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any()),
                    i,
                )
            })
            .collect();
        for key in table.served() {
            let Some(ing) = by_key.get(key) else {
                continue;
            };
            let generation = ing.metadata.generation.unwrap_or_default();
            if self.synced.get(key) != Some(&generation) {
                self.synced.insert(key.clone(), generation);
                self.recorder
                    .publish(
                        &object_ref(ing.as_ref()),
                        EventType::Normal,
                        "Sync",
                        "Scheduled for sync",
                    )
                    .await;
            }
            if let Some(want) = &address {
                if status::differs(ing, want) {
                    let ns = ing.namespace().unwrap_or_default();
                    if let Err(e) = status::publish(&self.client, &ns, &ing.name_any(), want).await
                    {
                        tracing::warn!(ingress = %key, error = %e, "could not write the Ingress status");
                    }
                }
            }
        }
        let served: HashSet<&String> = table.served().iter().collect();
        self.synced.retain(|k, _| served.contains(k));
        // An Ingress that left this controller (another class now) loses the address it got
        // here; another controller's address, or one written by hand, stays.
        let Some(ours) = address.filter(|a| !a.is_empty()) else {
            return;
        };
        for (key, ing) in &by_key {
            if served.contains(key) || status::differs(ing, &ours) {
                continue;
            }
            let ns = ing.namespace().unwrap_or_default();
            if let Err(e) = status::clear(&self.client, &ns, &ing.name_any(), &ours).await {
                tracing::warn!(ingress = %key, error = %e, "could not clear the Ingress status");
            }
        }
    }
}
