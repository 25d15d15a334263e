//! Watches that survive a bad neighbour. A typed list fails as a whole when one object does not
//! decode, and the watcher then relists forever, so no Service would get Endpoints again. Here
//! objects are listed and watched untyped and decoded one by one: an object that does not
//! decode is left out, counted, logged and reported in an Event naming it, and the others flow.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::events::{EventType, Recorder};

/// What one endpoints loop left out: a count of objects that did not decode (a metric), and
/// the objects left out now (`Kind namespace/name` → why), until a version of them decodes,
/// they go, or a relist no longer finds them bad. One per loop, so two loops in one process
/// (tests, several clusters) do not see each other's.
#[derive(Debug, Default)]
pub struct Skips {
    failures: AtomicU64,
    skipped: Mutex<BTreeMap<String, String>>,
}

impl Skips {
    /// Objects this loop could not decode since it started.
    pub fn decode_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The objects this loop leaves out now, with why (what `/readyz` reports).
    pub fn skipped(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.skipped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the object an event is about; a relist's start clears what was left out of
    /// `kind` (it is judged again).
    fn identify(&self, kind: &str, event: &watcher::Event<Raw>) -> Option<(String, bool)> {
        if let watcher::Event::Init = event {
            let prefix = format!("{kind} ");
            self.lock().retain(|k, _| !k.starts_with(&prefix));
        }
        identify(kind, event)
    }

    /// Records whether the object `seen` is left out now: `bad` is its decode error, if any.
    fn track(&self, seen: Option<(String, bool)>, bad: Option<&str>) {
        let Some((key, gone)) = seen else { return };
        let mut skipped = self.lock();
        match bad {
            Some(e) if !gone => {
                skipped.insert(key, e.to_string());
            }
            _ => {
                skipped.remove(&key);
            }
        }
    }
}

/// The object an event is about, `Kind namespace/name`, and whether it went.
fn identify(kind: &str, event: &watcher::Event<Raw>) -> Option<(String, bool)> {
    let key = |o: &Raw| {
        let ns = o.meta.namespace.as_deref().unwrap_or_default();
        let name = o.meta.name.as_deref().unwrap_or_default();
        format!("{kind} {ns}/{name}")
    };
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some((key(o), false)),
        watcher::Event::Delete(o) => Some((key(o), true)),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Any object, as JSON, with as much of its metadata as decodes (the watcher needs the
/// resourceVersion, the report needs the name).
#[derive(Clone, Debug, Serialize)]
pub struct Raw {
    #[serde(skip)]
    meta: ObjectMeta,
    #[serde(flatten)]
    value: Value,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Raw {
            meta: lenient_meta(&value["metadata"]),
            value,
        })
    }
}

/// The metadata, or when it does not decode, the identifying strings it has.
fn lenient_meta(m: &Value) -> ObjectMeta {
    ObjectMeta::deserialize(m).unwrap_or_else(|_| {
        let s = |k: &str| m[k].as_str().map(str::to_string);
        ObjectMeta {
            name: s("name"),
            namespace: s("namespace"),
            uid: s("uid"),
            resource_version: s("resourceVersion"),
            ..ObjectMeta::default()
        }
    })
}

impl Resource for Raw {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// One object that did not decode: what to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub error: String,
}

fn decode<K: DeserializeOwned>(raw: Raw) -> Result<K, Undecodable> {
    serde_json::from_value(raw.value).map_err(|e| Undecodable {
        namespace: raw.meta.namespace,
        name: raw.meta.name,
        uid: raw.meta.uid,
        error: e.to_string(),
    })
}

/// A watcher event with its object decoded as `K`; `Err` for an object that does not decode
/// (the event is then dropped: a reflector keeps the last good version of it).
pub fn decode_event<K: DeserializeOwned>(
    event: watcher::Event<Raw>,
) -> Result<watcher::Event<K>, Undecodable> {
    Ok(match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(decode(o)?),
        watcher::Event::Delete(o) => watcher::Event::Delete(decode(o)?),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(decode(o)?),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// `kube::runtime::watcher` over all `K`, decoding each object on its own.
pub fn watch<K>(
    client: &Client,
    config: watcher::Config,
    recorder: Recorder,
    skips: Arc<Skips>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let kind = resource.kind.clone();
    let api_version = resource.api_version.clone();
    watcher::watcher(Api::<Raw>::all_with(client.clone(), &resource), config).filter_map(
        move |event| {
            let out = match event {
                Ok(raw) => {
                    let seen = skips.identify(&kind, &raw);
                    match decode_event::<K>(raw) {
                        Ok(event) => {
                            skips.track(seen, None);
                            Some(Ok(event))
                        }
                        Err(bad) => {
                            skips.track(seen, Some(&bad.error));
                            skips.failures.fetch_add(1, Ordering::Relaxed);
                            report(&recorder, &kind, &api_version, bad);
                            None
                        }
                    }
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        },
    )
}

fn report(recorder: &Recorder, kind: &str, api_version: &str, bad: Undecodable) {
    tracing::error!(kind, namespace = ?bad.namespace, name = ?bad.name, error = %bad.error,
        "endpoints: skipping an object that does not decode");
    let object = k8s_openapi::api::core::v1::ObjectReference {
        kind: Some(kind.to_string()),
        api_version: Some(api_version.to_string()),
        namespace: bad.namespace,
        name: bad.name,
        uid: bad.uid,
        ..Default::default()
    };
    let message = format!("the endpoints controller skips this object: {}", bad.error);
    let recorder = recorder.clone();
    tokio::spawn(async move {
        recorder
            .publish(&object, EventType::Warning, "FailedToDecode", &message)
            .await
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn raw(v: Value) -> Raw {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn one_bad_object_costs_only_itself() {
        let good = raw(json!({"metadata": {"name": "a", "resourceVersion": "5"},
            "spec": {"selector": {"app": "x"}}}));
        let bad = raw(
            json!({"metadata": {"name": "b", "namespace": "default", "uid": "u",
            "labels": {"l": null}}, "spec": {"selector": {"a": null}}}),
        );
        assert_eq!(
            bad.meta.name.as_deref(),
            Some("b"),
            "identity survives bad metadata"
        );
        let Ok(watcher::Event::InitApply(svc)) =
            decode_event::<Service>(watcher::Event::InitApply(good))
        else {
            panic!("the good Service decodes");
        };
        assert_eq!(svc.metadata.resource_version.as_deref(), Some("5"));
        let err = decode_event::<Service>(watcher::Event::Apply(bad)).unwrap_err();
        assert_eq!(
            (
                err.namespace.as_deref(),
                err.name.as_deref(),
                err.uid.as_deref()
            ),
            (Some("default"), Some("b"), Some("u"))
        );
        assert!(err.error.contains("invalid type: null"), "{}", err.error);
        assert!(matches!(
            decode_event::<Service>(watcher::Event::InitDone),
            Ok(watcher::Event::InitDone)
        ));
    }

    #[test]
    fn an_object_is_left_out_until_it_decodes_goes_or_a_relist_clears_it() {
        let kind = "Service";
        let skips = Skips::default();
        let other = Skips::default();
        let mine = || -> Vec<String> { skips.skipped().into_iter().map(|(k, _)| k).collect() };
        let obj = |name: &str| raw(json!({"metadata": {"name": name, "namespace": "n"}}));
        let see = |event: watcher::Event<Raw>, bad: Option<&str>| {
            skips.track(skips.identify(kind, &event), bad);
        };
        other.track(Some(("Service n/x".into(), false)), Some("bad"));
        see(watcher::Event::Apply(obj("a")), Some("invalid type: null"));
        see(watcher::Event::Apply(obj("b")), Some("invalid type: null"));
        assert_eq!(mine(), [format!("{kind} n/a"), format!("{kind} n/b")]);
        see(watcher::Event::Apply(obj("a")), None);
        assert_eq!(mine(), [format!("{kind} n/b")]);
        see(watcher::Event::Delete(obj("b")), Some("still bad"));
        assert!(mine().is_empty());
        see(watcher::Event::InitApply(obj("c")), Some("bad"));
        see(watcher::Event::Init, None);
        assert!(mine().is_empty(), "a relist judges again");
        assert_eq!(other.skipped().len(), 1, "another loop's list is its own");
    }
}
