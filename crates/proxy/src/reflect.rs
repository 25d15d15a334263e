//! Watching objects for a sync loop: reflectors whose events wake the loop and record how
//! long a change has waited (network programming latency). The service proxy and the
//! NetworkPolicy enforcer share it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::healthz::ProxyHealthz;

/// What woke the loop, and since when something has been waiting.
#[derive(Default)]
pub struct Changes {
    pub wake: Notify,
    /// Arrival of the oldest watch event no sync has covered yet.
    oldest: Mutex<Option<Instant>>,
    /// The proxy's healthz, told of every change too, until a sync succeeds.
    healthz: Option<Arc<ProxyHealthz>>,
    /// The trigger times of the EndpointSlice changes no sync has covered yet.
    triggers: Mutex<Vec<k8s_openapi::jiff::Timestamp>>,
}

/// What an EndpointSlice's controller says started the change that wrote it.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

impl Changes {
    /// Changes that also keep `healthz` current.
    pub fn with_healthz(healthz: Arc<ProxyHealthz>) -> Changes {
        Changes {
            healthz: Some(healthz),
            ..Changes::default()
        }
    }

    pub fn mark(&self) {
        let mut oldest = self.oldest.lock().unwrap_or_else(|e| e.into_inner());
        oldest.get_or_insert_with(Instant::now);
        drop(oldest);
        if let Some(h) = &self.healthz {
            h.queued();
        }
        self.wake.notify_one();
    }

    pub fn pending(&self) -> bool {
        self.oldest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub fn take(&self) -> Option<Instant> {
        self.oldest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn note_trigger(&self, annotations: &std::collections::BTreeMap<String, String>) {
        if let Some(t) = annotations.get(TRIGGER_TIME).and_then(|t| t.parse().ok()) {
            self.triggers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t);
        }
    }

    /// The trigger times of the changes up to now; put back with [`Changes::restore_triggers`]
    /// if the sync fails.
    pub fn take_triggers(&self) -> Vec<k8s_openapi::jiff::Timestamp> {
        std::mem::take(&mut *self.triggers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn restore_triggers(&self, mut earlier: Vec<k8s_openapi::jiff::Timestamp>) {
        let mut triggers = self.triggers.lock().unwrap_or_else(|e| e.into_inner());
        earlier.append(&mut triggers);
        *triggers = earlier;
    }

    /// Puts back the start of changes a failed sync did not program.
    pub fn restore(&self, since: Option<Instant>) {
        let mut oldest = self.oldest.lock().unwrap_or_else(|e| e.into_inner());
        *oldest = match (*oldest, since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Reflector tasks, stopped when the loop's future is dropped.
#[derive(Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: &Arc<Changes>,
    tasks: &mut Tasks,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let changes = changes.clone();
    tasks.0.push(tokio::spawn(stream.for_each(move |ev| {
        match ev {
            Ok(ev) => {
                // Changes, not the initial list, are what network programming latency times.
                if let watcher::Event::Apply(obj) = &ev {
                    changes.note_trigger(obj.annotations());
                }
                changes.mark()
            }
            Err(e) => tracing::warn!(error = %e, "watch error"),
        }
        futures::future::ready(())
    })));
    reader
}
