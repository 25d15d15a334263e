//! What kube-apiserver's default admission plugins add to a Pod on create: ServiceAccount and
//! DefaultTolerationSeconds (Priority reads stored classes: [`crate::priority`]). They only fill
//! fields that are absent, so applying them again on update (where these fields are immutable
//! and already stored) changes nothing.

use serde_json::{json, Value};

use crate::json::{default_str, ensure, Obj};

use super::Settings;

use kinet_types::wellknown::{NOT_READY_TAINT as NOT_READY, UNREACHABLE_TAINT as UNREACHABLE};

pub fn pod(obj: &mut Obj, settings: &Settings) {
    let spec = ensure(obj, "spec");
    service_account(spec);
    default_toleration_seconds(spec, settings.default_toleration_seconds);
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

/// The IngressClass annotation that marks the cluster's default class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// DefaultIngressClass: an Ingress created without a class (neither `spec.ingressClassName`
/// nor the deprecated `kubernetes.io/ingress.class` annotation) gets the default IngressClass,
/// the newest when several are marked default, as upstream since 1.28. `classes` are the
/// stored IngressClasses.
pub fn default_ingress_class(ingress: &mut Value, classes: &[&Value]) {
    let has_class = ingress
        .pointer("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null())
        || ingress
            .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            .is_some();
    if has_class {
        return;
    }
    let default = classes
        .iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by_key(|c| {
            (
                c.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        });
    let name = default.and_then(|c| c.pointer("/metadata/name")).cloned();
    if let (Some(name), Some(obj)) = (name, ingress.as_object_mut()) {
        ensure(obj, "spec").insert("ingressClassName".into(), name);
    }
}

#[cfg(test)]
mod ingress_class_tests {
    use super::*;

    fn class(name: &str, default: bool, created: &str) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if default {
            c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        c
    }

    #[test]
    fn classless_ingresses_get_the_newest_default_class() {
        let old = class("old", true, "2026-01-01T00:00:00Z");
        let new = class("new", true, "2026-02-01T00:00:00Z");
        let other = class("other", false, "2026-03-01T00:00:00Z");
        let classes = [&old, &other, &new];
        let mut ing = json!({"spec": {}});
        default_ingress_class(&mut ing, &classes);
        assert_eq!(ing["spec"]["ingressClassName"], "new");
        // A class named, by field or by the old annotation, stays as it is.
        let mut named = json!({"spec": {"ingressClassName": "other"}});
        default_ingress_class(&mut named, &classes);
        assert_eq!(named["spec"]["ingressClassName"], "other");
        let mut annotated =
            json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}});
        default_ingress_class(&mut annotated, &classes);
        assert!(annotated.pointer("/spec/ingressClassName").is_none());
        // No default class: nothing is filled in.
        let mut plain = json!({"spec": {}});
        default_ingress_class(&mut plain, &[&other]);
        assert!(plain.pointer("/spec/ingressClassName").is_none());
    }
}
