//! Defaults of the smaller kinds: Namespace, Secret, Node, NetworkPolicy.

use serde_json::{json, Value};

use crate::json::{child, default_str, default_to, ensure, items, Obj};

/// SetDefaults_Namespace, SetDefaults_NamespaceStatus, and the `kubernetes` finalizer the
/// namespace strategy adds on create (update keeps the stored finalizers).
pub fn namespace(obj: &mut Obj) {
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        let labels = ensure(ensure(obj, "metadata"), "labels");
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    default_to(ensure(obj, "spec"), "finalizers", json!(["kubernetes"]));
    default_str(ensure(obj, "status"), "phase", "Active");
}

/// SetDefaults_Secret, after the v1 → internal conversion that folds `stringData` into
/// `data` (base64, overriding keys `data` already has), so it is validated and stored as data.
/// The body was decoded into the typed Secret first (`canonicalize`), which refuses a value
/// that is not a string, so there is no other kind of value to fold.
pub fn secret(obj: &mut Obj) {
    use base64::Engine;
    if let Some(Value::Object(strings)) = obj.remove("stringData") {
        let data = ensure(obj, "data");
        for (k, v) in strings {
            let Value::String(text) = v else { continue };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, json!(encoded));
        }
    }
    default_str(obj, "type", "Opaque");
}

/// SetDefaults_LimitRangeItem: a Container item's default limit falls back to its max, and its
/// default request to its default limit, then to its min.
pub fn limit_range(obj: &mut Obj) {
    let Some(items) = child(obj, "spec").and_then(|s| s.get_mut("limits")) else {
        return;
    };
    for item in items.as_array_mut().into_iter().flatten() {
        let Some(item) = item
            .as_object_mut()
            .filter(|i| i.get("type") == Some(&json!("Container")))
        else {
            continue;
        };
        let copy = |item: &mut Obj, from: &str, to: &str| {
            let source = item
                .get(from)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if source.is_empty() {
                return;
            }
            let target = ensure(item, to);
            for (k, v) in source {
                target.entry(k).or_insert(v);
            }
        };
        copy(item, "max", "default");
        copy(item, "default", "defaultRequest");
        copy(item, "min", "defaultRequest");
    }
}

/// Allocatable defaults to capacity.
pub fn node(obj: &mut Obj) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null) {
        if let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned() {
            status.insert("allocatable".into(), cap);
        }
    }
}

/// networking/v1 SetDefaults_NetworkPolicy: Ingress always, Egress when egress rules exist.
pub fn network_policy(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    let empty = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty {
        let mut types = vec![json!("Ingress")];
        if spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty())
        {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for dir in ["ingress", "egress"] {
        for rule in items(spec, dir) {
            for p in items(rule, "ports") {
                default_to(p, "protocol", json!("TCP"));
            }
        }
    }
}
