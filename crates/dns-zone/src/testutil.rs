//! Typed fixtures built from JSON, as the API server would hand them over.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

pub(crate) fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .expect("valid Service")
}

pub(crate) fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    address_type: &str,
    ports: Value,
    endpoints: Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "namespace": ns,
            "name": name,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": address_type,
        "ports": ports,
        "endpoints": endpoints,
    }))
    .expect("valid EndpointSlice")
}

/// Ready IPv4 endpoints with the given addresses and optional hostnames.
pub(crate) fn ready(addrs: &[(&str, Option<&str>)]) -> Value {
    Value::Array(
        addrs
            .iter()
            .map(|(a, h)| match h {
                Some(h) => json!({"addresses": [a], "hostname": h, "conditions": {"ready": true}}),
                None => json!({"addresses": [a], "conditions": {"ready": true}}),
            })
            .collect(),
    )
}
