//! Watching objects for a sync loop: reflectors whose events wake the loop and record how
//! long a change has waited (network programming latency). The service proxy and the
//! NetworkPolicy enforcer share it.

use std::collections::HashSet;
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

/// An object's namespace (empty when cluster-scoped) and name.
pub type Key = (String, String);

/// What the events of one reflector named since the loop last looked: the keys of the
/// objects applied or deleted, or that the watch relisted (so anything may have gone).
#[derive(Debug)]
pub struct Touched(Mutex<Touch>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    Keys(HashSet<Key>),
    /// Compare everything: the first list, or a relist after the watch restarted.
    All,
}

impl Default for Touched {
    fn default() -> Touched {
        Touched(Mutex::new(Touch::All))
    }
}

impl Touched {
    fn record<K: kube::Resource>(&self, ev: &watcher::Event<K>) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let o = match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => o,
            watcher::Event::Init => {
                *t = Touch::All;
                return;
            }
            watcher::Event::InitApply(_) | watcher::Event::InitDone => return,
        };
        if let Touch::Keys(keys) = &mut *t {
            let m = o.meta();
            keys.insert((
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            ));
        }
    }

    /// What was touched since the last take.
    pub fn take(&self) -> Touch {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *t, Touch::Keys(HashSet::new()))
    }
}

/// What a reflector can watch: a kind with static type information.
pub trait Watchable:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

pub fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: &Arc<Changes>,
    tasks: &mut Tasks,
) -> Store<K>
where
    K: Watchable,
{
    spawn(api, config, changes, tasks, None)
}

/// A reflector that also records the keys its events touch in `touched`, for a loop that
/// hands on only what changed.
pub fn spawn_touching_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: &Arc<Changes>,
    tasks: &mut Tasks,
    touched: Arc<Touched>,
) -> Store<K>
where
    K: Watchable,
{
    spawn(api, config, changes, tasks, Some(touched))
}

fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: &Arc<Changes>,
    tasks: &mut Tasks,
    touched: Option<Arc<Touched>>,
) -> Store<K>
where
    K: Watchable,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let changes = changes.clone();
    tasks.0.push(tokio::spawn(stream.for_each(move |ev| {
        match ev {
            Ok(ev) => {
                if let Some(t) = &touched {
                    t.record(&ev);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p
    }

    #[test]
    fn touched_keys_are_recorded_until_taken_and_a_relist_means_all() {
        let t = Touched::default();
        assert_eq!(t.take(), Touch::All, "the first list is compared whole");
        t.record(&watcher::Event::Apply(pod("x", "a")));
        t.record(&watcher::Event::Delete(pod("y", "b")));
        let want: HashSet<Key> = [("x", "a"), ("y", "b")]
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_string()))
            .collect();
        assert_eq!(t.take(), Touch::Keys(want));
        assert_eq!(t.take(), Touch::Keys(HashSet::new()));
        t.record(&watcher::Event::Apply(pod("x", "a")));
        t.record(&watcher::Event::<Pod>::Init);
        t.record(&watcher::Event::InitApply(pod("x", "c")));
        t.record(&watcher::Event::<Pod>::InitDone);
        t.record(&watcher::Event::Apply(pod("x", "d")));
        assert_eq!(t.take(), Touch::All);
    }
}
