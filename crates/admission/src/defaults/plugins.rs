//! What kube-apiserver's default admission plugins add to a Pod on create: ServiceAccount,
//! DefaultTolerationSeconds and Priority. They only fill fields that are absent, so applying
//! them again on update (where these fields are immutable and already stored) changes nothing.

use serde_json::{json, Value};

use crate::json::{default_str, default_to, ensure, Obj};

use super::Settings;

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub fn pod(obj: &mut Obj, settings: &Settings) {
    let spec = ensure(obj, "spec");
    service_account(spec);
    default_toleration_seconds(spec, settings.default_toleration_seconds);
    priority(spec);
}

/// ServiceAccount: pods run as `default` unless told otherwise; the deprecated
/// `serviceAccount` mirrors the name as v1 conversion does.
fn service_account(spec: &mut Obj) {
    let deprecated = spec
        .get("serviceAccount")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !deprecated.is_empty() {
        default_str(spec, "serviceAccountName", &deprecated);
    }
    default_str(spec, "serviceAccountName", "default");
    let name = spec["serviceAccountName"].clone();
    spec.insert("serviceAccount".into(), name);
}

/// Tolerate not-ready and unreachable nodes for `seconds` unless the pod already tolerates
/// them (a toleration with that key, or no key, and the NoExecute effect, or none).
fn default_toleration_seconds(spec: &mut Obj, seconds: u64) {
    let tolerates = |tols: &[Value], key: &str| {
        tols.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = Vec::new();
    for key in [NOT_READY, UNREACHABLE] {
        if !tolerates(&existing, key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if !added.is_empty() {
        let mut all = existing;
        all.extend(added);
        spec.insert("tolerations".into(), Value::Array(all));
    }
}

/// Priority: no PriorityClass objects exist besides the two built-in system classes, so a
/// pod without a class gets 0. Unknown class names are left for the server to reject.
fn priority(spec: &mut Obj) {
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = match class {
        "" => 0,
        "system-cluster-critical" => 2_000_000_000,
        "system-node-critical" => 2_000_001_000,
        _ => return,
    };
    default_to(spec, "priority", json!(value));
    default_to(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
}
