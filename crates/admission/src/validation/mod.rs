//! Validation for create and update, with kube-apiserver's field paths and messages.

mod meta;
mod misc;
// apimachinery's string formats live with the rest of the API vocabulary.
use kinet_types::validation as names;
mod networking;
mod pod;
mod rbac;
mod service;
mod workloads;

use kinet_types::{FieldError, Resource};
use serde_json::Value;

pub use meta::selector_matches;

/// Every error in `obj`, for a create (`old` = None) or an update of `old`.
pub fn validate(resource: &Resource, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    meta::object_meta(resource, obj, &mut errs);
    if let Some(old) = old {
        meta::object_meta_update(obj, old, &mut errs);
    }
    let e = &mut errs;
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            let empty = Value::Object(Default::default());
            pod::pod_spec(obj.get("spec").unwrap_or(&empty), "spec", e);
            if let Some(old) = old {
                pod::pod_update(obj, old, e);
            }
        }
        ("", "Service") => {
            service::service(obj, e);
            if let Some(old) = old {
                service::service_update(obj, old, e);
            }
        }
        ("", "Namespace") => misc::namespace(obj, e),
        ("", "ConfigMap") => misc::config_map(obj, e),
        ("", "Secret") => misc::secret(obj, e),
        ("", "Endpoints") => misc::endpoints(obj, e),
        ("", "Node") => misc::node(obj, e),
        ("", "Event") => misc::event(obj, e),
        ("discovery.k8s.io", "EndpointSlice") => misc::endpoint_slice(obj, e),
        ("coordination.k8s.io", "Lease") => misc::lease(obj, e),
        ("networking.k8s.io", "Ingress") => networking::ingress(obj, e),
        ("networking.k8s.io", "IngressClass") => networking::ingress_class(obj, e),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            e.extend(kinet_crd::validate_definition(obj))
        }
        ("networking.k8s.io", "NetworkPolicy") => networking::network_policy(obj, e),
        ("rbac.authorization.k8s.io", kind) => rbac::validate(kind, obj, old, e),
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "DaemonSet")) => {
            match kind {
                "Deployment" => workloads::deployment(obj, e),
                "ReplicaSet" => workloads::replica_set(obj, e),
                _ => workloads::daemon_set(obj, e),
            }
            if let Some(old) = old {
                workloads::selector_update(obj, old, e);
            }
        }
        ("apps", "StatefulSet") => {
            workloads::stateful_set(obj, e);
            if let Some(old) = old {
                workloads::stateful_set_update(obj, old, e);
            }
        }
        ("batch", "Job") => {
            workloads::job(obj, e);
            if let Some(old) = old {
                workloads::job_update(obj, old, e);
            }
        }
        ("batch", "CronJob") => workloads::cron_job(obj, e),
        _ => {}
    }
    errs
}

/// Every error in an update of a pod's `ephemeralcontainers` subresource (which changes
/// nothing else): `ValidatePodEphemeralContainersUpdate`.
pub fn validate_ephemeral_containers_update(
    resource: &Resource,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    meta::object_meta(resource, new, &mut errs);
    meta::object_meta_update(new, old, &mut errs);
    let empty = Value::Object(Default::default());
    pod::pod_spec(new.get("spec").unwrap_or(&empty), "spec", &mut errs);
    pod::ephemeral_containers_update(new, old, &mut errs);
    errs
}

#[cfg(test)]
mod tests;
