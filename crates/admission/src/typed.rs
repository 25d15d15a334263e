//! The kind -> typed-struct table. k8s-openapi's structs are the schema: what survives a
//! decode/encode round trip is what kube-apiserver's Go types know.

use k8s_openapi::api::{
    admissionregistration, apps, batch, certificates, coordination, core, discovery, networking,
    policy, rbac, scheduling,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as crd;
use kinet_types::Resource;
use serde::{de::DeserializeOwned, Serialize};

use crate::go_null::GoValue;
use serde_json::Value;

/// What to decode, and how.
pub enum Input<'a> {
    /// A client's body: read in place with Go's null rules.
    Go(&'a Value),
    /// An object already in stored form plus server-set fields: its values move into the
    /// struct (no copies), and a `null` where the schema has none is an error.
    Owned(Value),
}

fn round_trip<T: DeserializeOwned + Serialize>(input: Input) -> Result<Value, serde_json::Error> {
    let typed: T = match input {
        Input::Go(v) => T::deserialize(GoValue(v))?,
        Input::Owned(v) => serde_json::from_value(v)?,
    };
    serde_json::to_value(typed)
}

/// Decodes the input into the kind's typed struct and encodes it back. `None` for a kind
/// without a typed struct here (nothing to check against).
pub fn round_trip_kind(kind: &str, v: Input) -> Option<Result<Value, serde_json::Error>> {
    let f = match kind {
        "Pod" => round_trip::<core::v1::Pod>,
        "Service" => round_trip::<core::v1::Service>,
        "Namespace" => round_trip::<core::v1::Namespace>,
        "Node" => round_trip::<core::v1::Node>,
        "Endpoints" => round_trip::<core::v1::Endpoints>,
        "ConfigMap" => round_trip::<core::v1::ConfigMap>,
        "Secret" => round_trip::<core::v1::Secret>,
        "ServiceAccount" => round_trip::<core::v1::ServiceAccount>,
        "Event" => round_trip::<core::v1::Event>,
        "Deployment" => round_trip::<apps::v1::Deployment>,
        "ReplicaSet" => round_trip::<apps::v1::ReplicaSet>,
        "DaemonSet" => round_trip::<apps::v1::DaemonSet>,
        "EndpointSlice" => round_trip::<discovery::v1::EndpointSlice>,
        "Lease" => round_trip::<coordination::v1::Lease>,
        "CertificateSigningRequest" => round_trip::<certificates::v1::CertificateSigningRequest>,
        "Ingress" => round_trip::<networking::v1::Ingress>,
        "IngressClass" => round_trip::<networking::v1::IngressClass>,
        "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>,
        "CustomResourceDefinition" => round_trip::<crd::CustomResourceDefinition>,
        "StatefulSet" => round_trip::<apps::v1::StatefulSet>,
        "ControllerRevision" => round_trip::<apps::v1::ControllerRevision>,
        "Job" => round_trip::<batch::v1::Job>,
        "CronJob" => round_trip::<batch::v1::CronJob>,
        "PersistentVolumeClaim" => round_trip::<core::v1::PersistentVolumeClaim>,
        "ResourceQuota" => round_trip::<core::v1::ResourceQuota>,
        "LimitRange" => round_trip::<core::v1::LimitRange>,
        "PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>,
        "PriorityClass" => round_trip::<scheduling::v1::PriorityClass>,
        "ValidatingWebhookConfiguration" => {
            round_trip::<admissionregistration::v1::ValidatingWebhookConfiguration>
        }
        "MutatingWebhookConfiguration" => {
            round_trip::<admissionregistration::v1::MutatingWebhookConfiguration>
        }
        "Role" => round_trip::<rbac::v1::Role>,
        "ClusterRole" => round_trip::<rbac::v1::ClusterRole>,
        "RoleBinding" => round_trip::<rbac::v1::RoleBinding>,
        "ClusterRoleBinding" => round_trip::<rbac::v1::ClusterRoleBinding>,
        _ => return None,
    };
    Some(f(v))
}

/// Sets apiVersion/kind to the resource's own (the server routed by them, and the typed
/// struct would otherwise drop or misreport them).
pub fn prepare(resource: &Resource, obj: &mut Value) {
    if let Value::Object(map) = obj {
        map.insert("apiVersion".into(), Value::String(resource.api_version()));
        map.insert("kind".into(), Value::String(resource.kind.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::RESOURCES;

    #[test]
    fn every_served_kind_has_a_typed_struct() {
        for r in RESOURCES {
            let mut v = serde_json::json!({"metadata": {"name": "x"}});
            prepare(r, &mut v);
            let out =
                round_trip_kind(r.kind, Input::Go(&v)).unwrap_or_else(|| panic!("{}", r.kind));
            assert_eq!(out.unwrap()["metadata"]["name"], "x", "{}", r.kind);
        }
    }
}
