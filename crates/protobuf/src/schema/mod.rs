//! The schema table: for each Kubernetes message, its fields as Go declares them.
//! The per-package files are generated from the Go types (tools/gen_schema.py) because
//! the Go struct tags carry what the .proto files do not: JSON names, `omitempty`,
//! pointer-ness and inlining, which decide how Go's JSON encoder prints each field.

// Generated data: one row per line reads better than rustfmt's layout.
#[rustfmt::skip]
mod admin;
#[rustfmt::skip]
mod apps;
#[rustfmt::skip]
mod batch;
#[rustfmt::skip]
mod coordination;
#[rustfmt::skip]
mod core;
#[rustfmt::skip]
mod discovery;
#[rustfmt::skip]
mod meta;
#[rustfmt::skip]
mod networking;
#[rustfmt::skip]
mod rbac;

pub use self::core::*;
pub use admin::*;
pub use apps::*;
pub use batch::*;
pub use coordination::*;
pub use discovery::*;
pub use meta::*;
pub use networking::*;
pub use rbac::*;

/// A field's value type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    I32,
    I64,
    /// `[]byte`: base64 in JSON.
    Bytes,
    Msg(&'static Message),
    /// `intstr.IntOrString` {1: type, 2: intVal, 3: strVal}: a JSON number or string.
    IntOrString,
    /// `resource.Quantity` {1: string}: a JSON string.
    Quantity,
    /// `metav1.Time` (Timestamp {1: seconds, 2: nanos}): RFC 3339 to the second, zero is null.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `runtime.RawExtension` / `metav1.FieldsV1` {1: raw}: embedded JSON.
    RawJson,
}

/// Cardinality: a single value, a Go slice, or a Go `map[string]V` (entries {1: key, 2: value}).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    One,
    List,
    Map,
}

/// How Go's JSON encoder treats the field when it holds its zero value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `omitempty` on a non-pointer: zero scalars and empty slices/maps are dropped
    /// (structs are never "empty" to Go, so they are always printed).
    Omit,
    /// No `omitempty`: printed even when zero (`""`, `0`, `false`, `null` for nil slices).
    Always,
    /// A pointer: printed exactly when set, zero values included.
    Ptr,
    /// An embedded struct with `json:",inline"`: its fields are printed in the parent.
    Inline,
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub shape: Shape,
    pub presence: Presence,
}

/// Rows are listed in Go struct order, the order Go's JSON encoder prints them in.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, number: u32) -> Option<(usize, &Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.number == number)
    }
}

/// Row constructor for the generated tables.
pub const fn f(number: u32, json: &'static str, ty: Ty, shape: Shape, presence: Presence) -> Field {
    Field {
        number,
        json,
        ty,
        shape,
        presence,
    }
}

pub use Presence::{Always, Inline, Omit, Ptr};
pub use Shape::{List, Map, One};

/// Top-level kinds we can decode, by apiVersion and kind.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "ConfigMap", &CORE_CONFIG_MAP),
    ("v1", "Secret", &CORE_SECRET),
    ("v1", "Namespace", &CORE_NAMESPACE),
    ("v1", "ServiceAccount", &CORE_SERVICE_ACCOUNT),
    ("v1", "Service", &CORE_SERVICE),
    ("v1", "Pod", &CORE_POD),
    ("v1", "Node", &CORE_NODE),
    ("v1", "Endpoints", &CORE_ENDPOINTS),
    ("v1", "Event", &CORE_EVENT),
    ("v1", "ResourceQuota", &CORE_RESOURCE_QUOTA),
    (
        "policy/v1",
        "PodDisruptionBudget",
        &POLICY_POD_DISRUPTION_BUDGET,
    ),
    ("policy/v1", "Eviction", &POLICY_EVICTION),
    ("policy/v1beta1", "Eviction", &POLICY_EVICTION),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &SCHED_PRIORITY_CLASS,
    ),
    ("apps/v1", "Deployment", &APPS_DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &APPS_REPLICA_SET),
    ("apps/v1", "DaemonSet", &APPS_DAEMON_SET),
    ("apps/v1", "StatefulSet", &APPS_STATEFUL_SET),
    ("batch/v1", "Job", &BATCH_JOB),
    ("batch/v1", "CronJob", &BATCH_CRON_JOB),
    ("networking.k8s.io/v1", "Ingress", &NET_INGRESS),
    ("networking.k8s.io/v1", "IngressClass", &NET_INGRESS_CLASS),
    ("networking.k8s.io/v1", "NetworkPolicy", &NET_NETWORK_POLICY),
    ("discovery.k8s.io/v1", "EndpointSlice", &DISC_ENDPOINT_SLICE),
    ("coordination.k8s.io/v1", "Lease", &COORD_LEASE),
    ("rbac.authorization.k8s.io/v1", "Role", &RBAC_ROLE),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &RBAC_CLUSTER_ROLE,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &RBAC_ROLE_BINDING,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &RBAC_ROLE_BINDING,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &AUTHZ_SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &AUTHZ_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "LocalSubjectAccessReview",
        &AUTHZ_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &AUTHZ_SELF_SUBJECT_RULES_REVIEW,
    ),
    (
        "authentication.k8s.io/v1",
        "TokenReview",
        &AUTHN_TOKEN_REVIEW,
    ),
];

/// The root message for an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Walks every message reachable from the kinds table.
    fn reachable() -> Vec<&'static Message> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut stack: Vec<&'static Message> = KINDS.iter().map(|(_, _, m)| *m).collect();
        while let Some(m) = stack.pop() {
            if !seen.insert(m as *const Message) {
                continue;
            }
            out.push(m);
            for f in m.fields {
                if let Ty::Msg(child) = f.ty {
                    stack.push(child);
                }
            }
        }
        out
    }

    #[test]
    fn field_numbers_and_names_are_unique() {
        for m in reachable() {
            let mut numbers = HashSet::new();
            let mut names = HashSet::new();
            for f in m.fields {
                assert!(
                    numbers.insert(f.number),
                    "{}: duplicate number {}",
                    m.name,
                    f.number
                );
                if f.presence != Inline {
                    assert!(
                        names.insert(f.json),
                        "{}: duplicate name {}",
                        m.name,
                        f.json
                    );
                }
            }
        }
    }

    #[test]
    fn inline_fields_are_single_messages() {
        for m in reachable() {
            for f in m.fields.iter().filter(|f| f.presence == Inline) {
                assert!(
                    matches!(f.ty, Ty::Msg(_)) && f.shape == One,
                    "{}.{}",
                    m.name,
                    f.number
                );
            }
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(by_kind("apps/v1", "Deployment").unwrap().name, "Deployment");
        assert_eq!(by_kind("v1", "ConfigMap").unwrap().name, "ConfigMap");
        assert!(by_kind("v1", "Deployment").is_none());
        let pod = by_kind("v1", "Pod").unwrap();
        let (_, spec) = pod.field(2).unwrap();
        assert_eq!(spec.json, "spec");
        assert!(matches!(spec.ty, Ty::Msg(m) if m.name == "PodSpec"));
    }
}
