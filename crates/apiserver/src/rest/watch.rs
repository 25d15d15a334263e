//! WATCH: a chunked stream of `{"type","object"}` lines from the store's watch cache, with
//! selector transitions (an object that stops matching is DELETED for this watcher), bookmarks,
//! `sendInitialEvents`, and 410 Expired as an ERROR event when the requested version is gone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use kinet_store::{EventType, Stored};
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use super::{collection_prefix, read::Filter, Api, Call, Format};
use crate::http::Reply;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

/// Encodes watch events for one client, in its format.
struct Encoder {
    resource: &'static Resource,
    format: Format,
    sent_columns: bool,
    /// The served version of a custom resource: converts objects and prints its columns.
    custom: Option<Arc<crate::crds::Served>>,
}

impl Encoder {
    /// One event line. JSON events reuse the object's stored bytes, so fanning an event out to
    /// many watchers costs a copy per watcher, not a serialisation.
    fn event(&mut self, kind: &str, stored: &Stored) -> Bytes {
        let stored = match &self.custom {
            Some(served) => served.convert(stored),
            None => std::borrow::Cow::Borrowed(stored),
        };
        match self.format {
            Format::Json => {
                let mut line = Vec::with_capacity(stored.json.len() + 32);
                line.extend_from_slice(b"{\"type\":\"");
                line.extend_from_slice(kind.as_bytes());
                line.extend_from_slice(b"\",\"object\":");
                line.extend_from_slice(&stored.json);
                line.extend_from_slice(b"}\n");
                Bytes::from(line)
            }
            Format::Table => {
                let mut table = match &self.custom {
                    Some(served) => {
                        let metadata = json!({"resourceVersion": stored.rv.to_string()});
                        let body = served.table(
                            &[&stored.value],
                            &metadata,
                            kinet_printers::IncludeObject::Metadata,
                        );
                        serde_json::from_slice(&body).unwrap_or_default()
                    }
                    None => kinet_printers::table(
                        self.resource,
                        &[&stored.value],
                        &stored.rv.to_string(),
                        chrono::Utc::now(),
                    ),
                };
                // Only the first event carries column definitions, as kube-apiserver sends them.
                if self.sent_columns {
                    table["columnDefinitions"] = json!([]);
                }
                self.sent_columns = true;
                Encoder::raw(kind, table)
            }
        }
    }

    fn raw(kind: &str, object: Value) -> Bytes {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        Encoder::raw(
            "BOOKMARK",
            json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata}),
        )
    }
}

/// The watch event a filtered watcher sees for a change, if any.
fn transition(
    filter: &Filter,
    kind: EventType,
    object: &Stored,
    prev: Option<&Stored>,
) -> Option<&'static str> {
    let now = filter.matches(&object.value);
    let before = prev.is_some_and(|p| filter.matches(&p.value));
    match kind {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (now || before).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

impl Api {
    pub async fn watch(&self, call: Call) -> Result<Reply> {
        let resource = call.resource();
        let filter = Filter::from_call(&call)?;
        let prefix = collection_prefix(resource, call.namespace());
        let requested = call
            .query
            .get("resourceVersion")
            .filter(|rv| !rv.is_empty() && *rv != "0");
        let send_initial = call.query.flag("sendInitialEvents") || requested.is_none();
        let bookmarks = call.query.flag("allowWatchBookmarks");
        let initial_end_bookmark = call.query.flag("sendInitialEvents");
        let timeout = call
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut encoder = Encoder {
            resource,
            format: call.format,
            sent_columns: false,
            custom: self.crds.served(resource),
        };

        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let (initial, from) = match requested {
            None => {
                let (items, rv) = self.store.list(&prefix);
                (items, rv)
            }
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                (Vec::new(), rv)
            }
        };
        let watch = match self.store.watch(&prefix, Some(from)) {
            Ok(w) => Some(w),
            Err(e) if e.code == 410 => {
                let _ = tx.try_send(Encoder::raw("ERROR", e.to_status()));
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(mut watch) = watch {
            let store = self.store.clone();
            tokio::spawn(async move {
                if send_initial {
                    for stored in initial.iter().filter(|s| filter.matches(&s.value)) {
                        if tx.send(encoder.event("ADDED", stored)).await.is_err() {
                            return;
                        }
                    }
                    if initial_end_bookmark && tx.send(encoder.bookmark(from, true)).await.is_err()
                    {
                        return;
                    }
                }
                let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                loop {
                    let tick = tokio::time::sleep(BOOKMARK_EVERY);
                    let end = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        event = watch.next() => {
                            let Some(event) = event else { return };
                            if let Some(kind) = transition(&filter, event.kind, &event.object, event.prev.as_deref()) {
                                if tx.send(encoder.event(kind, &event.object)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        _ = tick, if bookmarks => {
                            if tx.send(encoder.bookmark(store.current_rv(), false)).await.is_err() {
                                return;
                            }
                        }
                        _ = end => return,
                        _ = tx.closed() => return,
                    }
                }
            });
        }
        let stream =
            ReceiverStream::new(rx).map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

/// A `Stream` over an mpsc receiver (what tokio-stream's wrapper does, without the dependency).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub fn new(rx: tokio::sync::mpsc::Receiver<T>) -> Self {
            ReceiverStream(rx)
        }
    }

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Query;
    use kinet_types::registry::lookup;

    fn stored(labels: Value) -> Stored {
        let value = json!({"metadata": {"name": "a", "namespace": "default", "labels": labels}});
        Stored {
            json: serde_json::to_vec(&value).unwrap().into(),
            value,
            rv: 1,
        }
    }

    #[test]
    fn json_events_reuse_the_stored_bytes() {
        let pods = lookup("", "v1", "pods").unwrap();
        let mut enc = Encoder {
            resource: pods,
            format: Format::Json,
            sent_columns: false,
            custom: None,
        };
        let line = enc.event("MODIFIED", &stored(json!({"app": "web"})));
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed["type"], "MODIFIED");
        assert_eq!(parsed["object"]["metadata"]["labels"]["app"], "web");
        assert!(line.ends_with(b"\n"));
        let mut tables = Encoder {
            resource: pods,
            format: Format::Table,
            sent_columns: false,
            custom: None,
        };
        let first: Value =
            serde_json::from_slice(&tables.event("ADDED", &stored(json!({})))).unwrap();
        let second: Value =
            serde_json::from_slice(&tables.event("ADDED", &stored(json!({})))).unwrap();
        assert!(!first["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .is_empty());
        assert!(second["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn selector_transitions() {
        let pods = lookup("", "v1", "pods").unwrap();
        let filter =
            Filter::parse(pods, &Query::parse(Some("labelSelector=app%3Dweb")), None).unwrap();
        let web = stored(json!({"app": "web"}));
        let other = stored(json!({"app": "db"}));
        assert_eq!(
            transition(&filter, EventType::Added, &web, None),
            Some("ADDED")
        );
        assert_eq!(transition(&filter, EventType::Added, &other, None), None);
        assert_eq!(
            transition(&filter, EventType::Modified, &other, Some(&web)),
            Some("DELETED")
        );
        assert_eq!(
            transition(&filter, EventType::Modified, &web, Some(&other)),
            Some("ADDED")
        );
        assert_eq!(
            transition(&filter, EventType::Deleted, &web, Some(&web)),
            Some("DELETED")
        );
    }
}
