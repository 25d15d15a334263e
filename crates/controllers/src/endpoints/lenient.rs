//! Watches that survive a bad neighbour. A typed list fails as a whole when one object does not
//! decode, and the watcher then relists forever, so no Service would get Endpoints again. Here
//! objects are listed and watched untyped and decoded one by one: an object that does not
//! decode is left out, counted, logged and reported in an Event naming it, and the others flow.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::events::{EventType, Recorder};

static DECODE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Objects the endpoints loop could not decode since the process started (a metric).
pub fn decode_failures() -> u64 {
    DECODE_FAILURES.load(Ordering::Relaxed)
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
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let kind = resource.kind.clone();
    let api_version = resource.api_version.clone();
    watcher::watcher(Api::<Raw>::all_with(client.clone(), &resource), config).filter_map(
        move |event| {
            let out = match event.map(decode_event::<K>) {
                Ok(Ok(event)) => Some(Ok(event)),
                Ok(Err(bad)) => {
                    report(&recorder, &kind, &api_version, bad);
                    None
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        },
    )
}

fn report(recorder: &Recorder, kind: &str, api_version: &str, bad: Undecodable) {
    DECODE_FAILURES.fetch_add(1, Ordering::Relaxed);
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
}
