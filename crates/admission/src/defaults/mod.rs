//! Defaulting, as the v1 defaulters (SetObjectDefaults_*) do it, plus the create-time
//! mutations of kube-apiserver's default admission plugins ([`plugins`]).

mod misc;
mod plugins;
mod pod;
mod service;
mod workloads;

use kinet_types::Resource;
use serde_json::Value;

pub use plugins::default_ingress_class;
pub use pod::image_tag;

/// The cluster-wide settings of the admission plugins (kube-apiserver flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// DefaultTolerationSeconds' `--default-not-ready-toleration-seconds` and
    /// `--default-unreachable-toleration-seconds` (both 300 upstream; one value here).
    pub default_toleration_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_toleration_seconds: 300,
        }
    }
}

/// Fills in every defaulted field of `obj` in place, with the default [`Settings`]. Idempotent.
pub fn default(resource: &Resource, obj: &mut Value) {
    default_with(resource, obj, &Settings::default())
}

/// [`default`] with the cluster's admission settings.
pub fn default_with(resource: &Resource, obj: &mut Value, settings: &Settings) {
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            pod::pod(obj);
            plugins::pod(obj, settings);
        }
        ("", "Service") => service::service(obj),
        ("", "Endpoints") => service::endpoints(obj),
        ("", "Namespace") => misc::namespace(obj),
        ("", "Secret") => misc::secret(obj),
        ("", "Node") => misc::node(obj),
        ("", "LimitRange") => misc::limit_range(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("discovery.k8s.io", "EndpointSlice") => service::endpoint_slice(obj),
        ("networking.k8s.io", "NetworkPolicy") => misc::network_policy(obj),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
