//! Server-side printing: meta.k8s.io Table columns and cells per kind, as kubectl shows them. No I/O.
//!
//! kube-apiserver answers `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` with a Table
//! whose rows carry every column, wide ones included; kubectl hides priority-1 columns unless
//! `-o wide`. The columns and cell logic follow `pkg/printers/internalversion/printers.go`
//! (k8s 1.32).

mod batch;
mod certificates;
mod columns;
mod core;
mod duration;
mod pod;
mod policy;
mod rbac;
mod util;
mod workloads;

use chrono::{DateTime, Utc};
use kinet_types::Resource;
use serde_json::{json, Value};

pub use columns::{columns, NAME_DOC};
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
        "PersistentVolumeClaim" => core::persistent_volume_claim(obj, now),
        "Deployment" => workloads::deployment(obj, now),
        "ReplicaSet" => workloads::replica_set(obj, now),
        "DaemonSet" => workloads::daemon_set(obj, now),
        "StatefulSet" => batch::stateful_set(obj, now),
        "Job" => batch::job(obj, now),
        "CronJob" => batch::cron_job(obj, now),
        "EndpointSlice" => workloads::endpoint_slice(obj, now),
        "Lease" => workloads::lease(obj, now),
        "Ingress" => workloads::ingress(obj, now),
        "IngressClass" => workloads::ingress_class(obj, now),
        "NetworkPolicy" => workloads::network_policy(obj, now),
        "ResourceQuota" => policy::resource_quota(obj, now),
        "CertificateSigningRequest" => certificates::certificate_signing_request(obj, now),
        "PodDisruptionBudget" => policy::pod_disruption_budget(obj, now),
        "PriorityClass" => policy::priority_class(obj, now),
        "ControllerRevision" => policy::controller_revision(obj, now),
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => {
            policy::webhook_configuration(obj, now)
        }
        "RoleBinding" | "ClusterRoleBinding" => rbac::binding(obj, now),
        // The apiserver's default table: name and creation time.
        _ => vec![json!(util::name(obj)), json!(util::created(obj))],
    }
}

/// What each row carries in `object`, from the request's `includeObject` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    /// `PartialObjectMetadata`, kube-apiserver's default (kubectl reads namespaces from it).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by` and custom columns).
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn from_param(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A whole Table as a value: `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{...},
/// "columnDefinitions":[..],"rows":[{"cells":[..],"object":<PartialObjectMetadata>}]}`.
pub fn table(
    resource: &Resource,
    objects: &[&Value],
    resource_version: &str,
    now: DateTime<Utc>,
) -> Value {
    let metadata = json!({"resourceVersion": resource_version});
    let bytes = table_json(resource, objects, &metadata, IncludeObject::Metadata, now);
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A Table serialised straight to JSON bytes, borrowing each object instead of copying it into a
/// new value tree: the hot path of `kubectl get` on large lists. `metadata` is the list metadata
/// (resourceVersion, continue).
pub fn table_json(
    resource: &Resource,
    objects: &[&Value],
    metadata: &Value,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Vec<u8> {
    table_json_with(
        columns(resource),
        &|obj| cells(resource, obj, now),
        objects,
        metadata,
        include,
    )
}

/// Like [`table_json`], with the columns and cells given (custom resources declare theirs).
pub fn table_json_with(
    column_definitions: Vec<Value>,
    cells: &dyn Fn(&Value) -> Vec<Value>,
    objects: &[&Value],
    metadata: &Value,
    include: IncludeObject,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum RowObject<'a> {
        Partial {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            metadata: &'a Value,
        },
        Full(&'a Value),
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        cells: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        object: Option<RowObject<'a>>,
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
            cells: cells(obj),
            object: match include {
                IncludeObject::None => None,
                IncludeObject::Metadata => Some(RowObject::Partial {
                    kind: "PartialObjectMetadata",
                    api_version: "meta.k8s.io/v1",
                    metadata: obj.get("metadata").unwrap_or(&EMPTY),
                }),
                IncludeObject::Object => Some(RowObject::Full(obj)),
            },
        })
        .collect();
    let table = Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata,
        column_definitions,
        rows,
    };
    serde_json::to_vec(&table).unwrap_or_default()
}

#[cfg(test)]
mod tests;
