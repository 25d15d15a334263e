//! ObjectMeta and label selectors (apimachinery/pkg/api/validation/objectmeta.go and
//! apimachinery/pkg/apis/meta/v1/validation).

use kinet_selectors::LabelSelector;
use kinet_types::{FieldError, Resource};
use serde_json::Value;

use super::names::{self, IMMUTABLE_MSG, NEGATIVE_MSG};
use crate::json::str_of;

/// kube-apiserver's annotations budget: keys plus values.
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// How a kind's object names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    /// RFC 1123 label: Namespace.
    Label,
    /// DNS-1035 label: Service.
    Dns1035,
    /// Any path segment (`path.IsValidPathSegmentName`): RBAC objects, e.g. `system:node`.
    PathSegment,
}

pub fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Service" => NameRule::Dns1035,
        "Namespace" => NameRule::Label,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

pub fn check_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    // A generateName prefix may end in '-': the random suffix follows it.
    let masked;
    let name = if prefix && name.len() > 1 && name.ends_with('-') {
        masked = format!("{}a", &name[..name.len() - 1]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Subdomain => names::is_dns1123_subdomain(name),
        NameRule::Label => names::is_dns1123_label(name),
        NameRule::Dns1035 => names::is_dns1035_label(name),
        NameRule::PathSegment => path_segment(name),
    }
}

fn path_segment(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
    }
    for c in ['/', '%'] {
        if name.contains(c) {
            out.push(format!("may not contain '{c}'"));
        }
    }
    out
}

pub fn invalid_each(
    errs: &mut Vec<FieldError>,
    path: &str,
    value: impl Into<Value> + Clone,
    msgs: Vec<String>,
) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value.clone(), &m));
    }
}

/// ValidateObjectMeta for `resource`'s naming and scope.
pub fn object_meta(resource: &Resource, obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&empty);
    let rule = name_rule(resource.kind);
    let generate = str_of(meta, "generateName");
    if !generate.is_empty() {
        invalid_each(
            errs,
            "metadata.generateName",
            generate,
            check_name(rule, generate, true),
        );
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        invalid_each(errs, "metadata.name", name, check_name(rule, name, false));
    }
    let ns = str_of(meta, "namespace");
    if resource.namespaced() {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            invalid_each(errs, "metadata.namespace", ns, names::is_dns1123_label(ns));
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g < 0)
    {
        errs.push(FieldError::invalid("metadata.generation", g, NEGATIVE_MSG));
    }
    if let Some(labels) = meta.get("labels") {
        validate_labels(labels, "metadata.labels", errs);
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            invalid_each(
                errs,
                "metadata.annotations",
                k.as_str(),
                names::is_qualified_name(&k.to_lowercase()),
            );
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE {
            errs.push(FieldError::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE,
            ));
        }
    }
    let mut seen = Vec::new();
    for f in meta
        .get("finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = f.as_str().unwrap_or("");
        invalid_each(errs, "metadata.finalizers", f, names::is_qualified_name(f));
        if seen.contains(&f) {
            errs.push(FieldError::duplicate("metadata.finalizers", f));
        }
        seen.push(f);
    }
}

/// ValidateLabels: bad keys are reported on the map's path, bad values on `path[key]`.
pub fn validate_labels(labels: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in labels.as_object().into_iter().flatten() {
        invalid_each(errs, path, k.as_str(), names::is_qualified_name(k));
        let v = v.as_str().unwrap_or("");
        invalid_each(errs, &format!("{path}[{k}]"), v, names::is_label_value(v));
    }
}

/// ValidateLabelSelector (metav1.LabelSelector).
pub fn label_selector(sel: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(ml) = sel.get("matchLabels") {
        validate_labels(ml, &format!("{path}.matchLabels"), errs);
    }
    for (i, req) in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("{path}.matchExpressions[{i}]");
        let has_values = req
            .get("values")
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
        let op = str_of(req, "operator");
        match op {
            "In" | "NotIn" if !has_values => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = str_of(req, "key");
        invalid_each(
            errs,
            &format!("{p}.key"),
            key,
            names::is_qualified_name(key),
        );
    }
}

/// Whether a metav1.LabelSelector selects `labels`. An empty selector selects everything; an
/// invalid one nothing.
pub fn selector_matches(sel: &Value, labels: &Value) -> bool {
    LabelSelector::from_label_selector(sel).is_ok_and(|s| s.matches(labels.as_object()))
}

/// Whether a selector has no requirements at all.
pub fn selector_is_empty(sel: &Value) -> bool {
    let n = |k: &str| {
        sel.get(k).map_or(0, |v| match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
    };
    n("matchLabels") + n("matchExpressions") == 0
}

/// ValidateObjectMetaUpdate: identity fields never change.
pub fn object_meta_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let n = new
            .get("metadata")
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or(Value::Null);
        let o = old
            .get("metadata")
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or(Value::Null);
        // An absent uid/creationTimestamp in the body means "keep": the server fills them.
        if n != o && !(n.is_null() && matches!(key, "uid" | "creationTimestamp")) {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                n,
                IMMUTABLE_MSG,
            ));
        }
    }
}
