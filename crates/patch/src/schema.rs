//! Strategic merge patch metadata: which lists merge (and by which key) instead of being
//! replaced whole.
//!
//! This is a hand-written copy of the `patchStrategy:"merge"` / `patchMergeKey` struct tags in
//! k8s.io/api (core/v1, apps/v1) and apimachinery (meta/v1) for the kinds kinet serves. Only
//! the paths that lead to a merging list are modelled: a field missing from a [`Schema`] is
//! merged like a JSON merge patch if it is a map and replaced if it is a list, which is what the
//! real tags say for every field left out here (for example `tolerations`, `node.spec.taints`
//! and `serviceaccount.imagePullSecrets` carry no patch strategy and are replaced).
//! `retainKeys` needs no entry: the `$retainKeys` directive in the patch drives it.

use kinet_types::Resource;

/// The fields of one Go struct that matter to strategic merge.
#[derive(Debug)]
pub struct Schema {
    pub fields: &'static [(&'static str, Field)],
}

/// How one field merges.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    /// A nested struct whose own fields have metadata.
    Struct(&'static Schema),
    /// A `patchStrategy:"merge"` list. `key` is the `patchMergeKey` for lists of objects and
    /// `None` for lists of scalars (merged as a set, e.g. `finalizers`). `elem` describes the
    /// items.
    MergeList {
        key: Option<&'static str>,
        elem: &'static Schema,
    },
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<Field> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// The schema of a nested map-valued field; unknown fields get [`EMPTY`].
    pub fn struct_field(&self, name: &str) -> &'static Schema {
        match self.field(name) {
            Some(Field::Struct(s)) => s,
            _ => &EMPTY,
        }
    }

    /// Strategy of a list field: `Some((merge key, item schema))` when it merges.
    pub fn merge_list(&self, name: &str) -> Option<(Option<&'static str>, &'static Schema)> {
        match self.field(name) {
            Some(Field::MergeList { key, elem }) => Some((key, elem)),
            _ => None,
        }
    }
}

const fn merge_by(key: &'static str, elem: &'static Schema) -> Field {
    Field::MergeList {
        key: Some(key),
        elem,
    }
}

const SCALAR_SET: Field = Field::MergeList {
    key: None,
    elem: &EMPTY,
};

/// A struct with no merging lists below it (or a field we know nothing about).
pub static EMPTY: Schema = Schema { fields: &[] };

pub static OBJECT_META: Schema = Schema {
    fields: &[
        ("finalizers", SCALAR_SET),
        ("ownerReferences", merge_by("uid", &EMPTY)),
    ],
};

pub static CONTAINER: Schema = Schema {
    fields: &[
        ("ports", merge_by("containerPort", &EMPTY)),
        ("env", merge_by("name", &EMPTY)),
        ("volumeMounts", merge_by("mountPath", &EMPTY)),
        ("volumeDevices", merge_by("devicePath", &EMPTY)),
    ],
};

pub static POD_SPEC: Schema = Schema {
    fields: &[
        ("volumes", merge_by("name", &EMPTY)),
        ("initContainers", merge_by("name", &CONTAINER)),
        ("containers", merge_by("name", &CONTAINER)),
        ("ephemeralContainers", merge_by("name", &CONTAINER)),
        ("imagePullSecrets", merge_by("name", &EMPTY)),
        ("hostAliases", merge_by("ip", &EMPTY)),
        ("topologySpreadConstraints", merge_by("topologyKey", &EMPTY)),
        ("schedulingGates", merge_by("name", &EMPTY)),
        ("resourceClaims", merge_by("name", &EMPTY)),
    ],
};

static CONDITIONS: Schema = Schema {
    fields: &[("conditions", merge_by("type", &EMPTY))],
};

pub static POD_STATUS: Schema = Schema {
    fields: &[
        ("conditions", merge_by("type", &EMPTY)),
        ("podIPs", merge_by("ip", &EMPTY)),
        ("hostIPs", merge_by("ip", &EMPTY)),
        ("resourceClaimStatuses", merge_by("name", &EMPTY)),
    ],
};

pub static POD_TEMPLATE_SPEC: Schema = Schema {
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("spec", Field::Struct(&POD_SPEC)),
    ],
};

/// Deployment, ReplicaSet, DaemonSet, StatefulSet and Job specs: the pod template is the only
/// merging part.
static WORKLOAD_SPEC: Schema = Schema {
    fields: &[("template", Field::Struct(&POD_TEMPLATE_SPEC))],
};

static JOB_TEMPLATE: Schema = Schema {
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("spec", Field::Struct(&WORKLOAD_SPEC)),
    ],
};

static CRON_JOB_SPEC: Schema = Schema {
    fields: &[("jobTemplate", Field::Struct(&JOB_TEMPLATE))],
};

static SERVICE_SPEC: Schema = Schema {
    fields: &[("ports", merge_by("port", &EMPTY))],
};

static NODE_SPEC: Schema = Schema {
    fields: &[("podCIDRs", SCALAR_SET)],
};

static NODE_STATUS: Schema = Schema {
    fields: &[
        ("conditions", merge_by("type", &EMPTY)),
        ("addresses", merge_by("type", &EMPTY)),
    ],
};

macro_rules! object {
    ($name:ident $(, $field:literal => $schema:expr)*) => {
        static $name: Schema = Schema {
            fields: &[("metadata", Field::Struct(&OBJECT_META)) $(, ($field, $schema))*],
        };
    };
}

object!(POD, "spec" => Field::Struct(&POD_SPEC), "status" => Field::Struct(&POD_STATUS));
object!(WORKLOAD, "spec" => Field::Struct(&WORKLOAD_SPEC), "status" => Field::Struct(&CONDITIONS));
object!(CRON_JOB, "spec" => Field::Struct(&CRON_JOB_SPEC));
object!(SERVICE, "spec" => Field::Struct(&SERVICE_SPEC), "status" => Field::Struct(&CONDITIONS));
object!(NODE, "spec" => Field::Struct(&NODE_SPEC), "status" => Field::Struct(&NODE_STATUS));
object!(NAMESPACE, "status" => Field::Struct(&CONDITIONS));
object!(SERVICE_ACCOUNT, "secrets" => merge_by("name", &EMPTY));
object!(PLAIN);

/// The top-level schema of an object of this resource.
pub fn for_resource(resource: &Resource) -> &'static Schema {
    for_kind(resource.kind)
}

/// The top-level schema for a kind; kinds without merging lists get only `metadata`.
pub fn for_kind(kind: &str) -> &'static Schema {
    match kind {
        "Pod" => &POD,
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => &WORKLOAD,
        "CronJob" => &CRON_JOB,
        "Service" => &SERVICE,
        "Node" => &NODE,
        "Namespace" => &NAMESPACE,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        _ => &PLAIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a dotted path of struct fields and returns the list strategy at its end.
    fn list_at(kind: &str, path: &str) -> Option<Option<&'static str>> {
        let mut schema = for_kind(kind);
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap();
        for part in parts {
            schema = match schema.field(part) {
                Some(Field::Struct(s)) => s,
                Some(Field::MergeList { elem, .. }) => elem,
                None => &EMPTY,
            };
        }
        schema.merge_list(last).map(|(key, _)| key)
    }

    #[test]
    fn merge_keys_match_the_api_tags() {
        let cases: &[(&str, &str, Option<Option<&str>>)] = &[
            ("Pod", "spec.containers", Some(Some("name"))),
            ("Pod", "spec.containers.ports", Some(Some("containerPort"))),
            ("Pod", "spec.containers.env", Some(Some("name"))),
            (
                "Pod",
                "spec.initContainers.volumeMounts",
                Some(Some("mountPath")),
            ),
            ("Pod", "spec.volumes", Some(Some("name"))),
            ("Pod", "spec.hostAliases", Some(Some("ip"))),
            ("Pod", "spec.tolerations", None),
            ("Pod", "spec.containers.args", None),
            ("Pod", "status.conditions", Some(Some("type"))),
            ("Pod", "metadata.finalizers", Some(None)),
            ("Pod", "metadata.ownerReferences", Some(Some("uid"))),
            (
                "Deployment",
                "spec.template.spec.containers",
                Some(Some("name")),
            ),
            ("DaemonSet", "spec.template.metadata.finalizers", Some(None)),
            ("ReplicaSet", "status.conditions", Some(Some("type"))),
            ("Deployment", "spec.selector.matchExpressions", None),
            ("Service", "spec.ports", Some(Some("port"))),
            ("Service", "spec.ipFamilies", None),
            ("Node", "spec.taints", None),
            ("Node", "spec.podCIDRs", Some(None)),
            ("Node", "status.addresses", Some(Some("type"))),
            ("ServiceAccount", "secrets", Some(Some("name"))),
            ("ServiceAccount", "imagePullSecrets", None),
            ("ConfigMap", "metadata.ownerReferences", Some(Some("uid"))),
            ("Endpoints", "subsets", None),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_at(kind, path), *want, "{kind} {path}");
        }
    }
}
