//! Server-side printing: meta.k8s.io Table columns and cells per kind, as kubectl shows them. No I/O.
//!
//! kube-apiserver answers `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` with a Table
//! whose rows carry every column, wide ones included; kubectl hides priority-1 columns unless
//! `-o wide`. The columns and cell logic follow `pkg/printers/internalversion/printers.go`
//! (k8s 1.32).

mod columns;
mod core;
mod duration;
mod pod;
mod util;
mod workloads;

use chrono::{DateTime, Utc};
use kinet_types::Resource;
use serde_json::{json, Value};

pub use columns::columns;
pub use duration::{human_age, human_duration};

/// The cells of one object's row, in column order, as kube-apiserver computes them.
pub fn cells(resource: &Resource, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match resource.kind {
        "Pod" => pod::cells(obj, now),
        "Service" => core::service(obj, now),
        "Endpoints" => core::endpoints(obj, now),
        "Node" => core::node(obj, now),
        "Namespace" => core::namespace(obj, now),
        "ConfigMap" => core::config_map(obj, now),
        "Secret" => core::secret(obj, now),
        "ServiceAccount" => core::service_account(obj, now),
        "Event" => core::event(obj, now),
        "Deployment" => workloads::deployment(obj, now),
        "ReplicaSet" => workloads::replica_set(obj, now),
        "DaemonSet" => workloads::daemon_set(obj, now),
        "EndpointSlice" => workloads::endpoint_slice(obj, now),
        "Lease" => workloads::lease(obj, now),
        "Ingress" => workloads::ingress(obj, now),
        "IngressClass" => workloads::ingress_class(obj, now),
        "NetworkPolicy" => workloads::network_policy(obj, now),
        // The apiserver's default table: name and creation time.
        _ => vec![json!(util::name(obj)), json!(util::created(obj))],
    }
}

/// A whole `meta.k8s.io/v1` Table; each row's object is the object's `PartialObjectMetadata`.
pub fn table(
    resource: &Resource,
    objects: &[&Value],
    resource_version: &str,
    now: DateTime<Utc>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            json!({
                "cells": cells(resource, obj, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns(resource),
        "rows": rows,
    })
}

/// [`table`] serialised straight to JSON bytes, borrowing each object's metadata instead of
/// copying it into a new value tree: the hot path of `kubectl get` on large lists.
/// `metadata` is the list metadata (resourceVersion, continue).
pub fn table_json(
    resource: &Resource,
    objects: &[&Value],
    metadata: &Value,
    now: DateTime<Utc>,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct PartialObjectMetadata<'a> {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        metadata: &'a Value,
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        cells: Vec<Value>,
        object: PartialObjectMetadata<'a>,
    }
    #[derive(serde::Serialize)]
    struct Table<'a> {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        metadata: &'a Value,
        #[serde(rename = "columnDefinitions")]
        column_definitions: Vec<Value>,
        rows: Vec<Row<'a>>,
    }
    static EMPTY: Value = Value::Null;
    let rows = objects
        .iter()
        .map(|obj| Row {
            cells: cells(resource, obj, now),
            object: PartialObjectMetadata {
                kind: "PartialObjectMetadata",
                api_version: "meta.k8s.io/v1",
                metadata: obj.get("metadata").unwrap_or(&EMPTY),
            },
        })
        .collect();
    let table = Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata,
        column_definitions: columns(resource),
        rows,
    };
    serde_json::to_vec(&table).unwrap_or_default()
}

#[cfg(test)]
mod tests;
