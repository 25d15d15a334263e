//! Which field labels kube-apiserver accepts per kind (the scheme's field label conversion
//! funcs), and the value each has on an object (the registries' `ToSelectableFields`).

use kinet_types::Resource;
use serde_json::Value;

/// How a kind's unsupported labels are reported: kinds with their own conversion func say
/// `field label not supported`, the rest fall back to apimachinery's default message.
pub(crate) enum Unsupported {
    NotSupported,
    DefaultMeta,
}

/// The labels a kind accepts (aliases included) and how it rejects the others.
pub(crate) fn supported(resource: &Resource) -> (&'static [&'static str], Unsupported) {
    use Unsupported::*;
    match (resource.group, resource.kind) {
        ("", "Pod") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                "spec.host",
            ],
            NotSupported,
        ),
        ("", "Node") => (&["metadata.name", "spec.unschedulable"], NotSupported),
        ("", "Namespace") => (&["metadata.name", "status.phase"], NotSupported),
        ("", "Secret") => (
            &["metadata.name", "metadata.namespace", "type"],
            NotSupported,
        ),
        ("", "Service") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.clusterIP",
                "spec.type",
            ],
            NotSupported,
        ),
        ("", "Event") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            NotSupported,
        ),
        ("apps", "ReplicaSet") => (
            &["metadata.name", "metadata.namespace", "status.replicas"],
            NotSupported,
        ),
        _ => (&["metadata.name", "metadata.namespace"], DefaultMeta),
    }
}

/// The label a supported one is stored under (old clients send pods' `spec.host`).
pub(crate) fn canonical(resource: &Resource, label: &str) -> String {
    match (resource.kind, label) {
        ("Pod", "spec.host") => "spec.nodeName".to_string(),
        _ => label.to_string(),
    }
}

fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn string_at(obj: &Value, path: &[&str]) -> String {
    match at(obj, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// `strconv.FormatBool` of a bool field that defaults to false.
fn bool_at(obj: &Value, path: &[&str]) -> String {
    at(obj, path)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

/// The value of a field label on an object; unknown or absent fields are "" as in a
/// `fields.Set`, except where the Go field is a bool or int and so has a zero value.
pub(crate) fn value(resource: &Resource, obj: &Value, label: &str) -> String {
    match (resource.kind, label) {
        (_, "metadata.name") => string_at(obj, &["metadata", "name"]),
        // Cluster-scoped objects carry no namespace field.
        (_, "metadata.namespace") if resource.namespaced() => {
            string_at(obj, &["metadata", "namespace"])
        }
        (_, "metadata.namespace") => String::new(),
        ("Pod", "spec.hostNetwork") => bool_at(obj, &["spec", "hostNetwork"]),
        ("Pod", "status.podIP") => {
            let first = at(obj, &["status", "podIPs"])
                .and_then(|v| v.get(0))
                .and_then(|v| v.get("ip"));
            match first.and_then(Value::as_str) {
                Some(ip) => ip.to_string(),
                None => string_at(obj, &["status", "podIP"]),
            }
        }
        // Accepted by the conversion but not in the selectable set, so always "".
        ("Pod", "status.podIPs") => String::new(),
        ("Node", "spec.unschedulable") => bool_at(obj, &["spec", "unschedulable"]),
        ("ReplicaSet", "status.replicas") => at(obj, &["status", "replicas"])
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        ("Event", "reportingComponent") => string_at(obj, &["reportingComponent"]),
        ("Event", "source") => {
            let component = string_at(obj, &["source", "component"]);
            if component.is_empty() {
                string_at(obj, &["reportingComponent"])
            } else {
                component
            }
        }
        _ => {
            let path: Vec<&str> = label.split('.').collect();
            string_at(obj, &path)
        }
    }
}
