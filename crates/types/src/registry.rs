//! The resources kinet serves. One table drives discovery, routing, validation and printing, so
//! adding a kind is adding a row.

/// Whether objects of a resource live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource (a REST collection), as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The plural resource name used in paths, e.g. `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub scope: Scope,
    pub categories: &'static [&'static str],
    /// Subresources, e.g. `status`, `scale`, `log`.
    pub subresources: &'static [&'static str],
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: how kube-apiserver names the resource in messages.
    pub fn qualified_resource(&self) -> String {
        qualify(self.plural, self.group)
    }

    /// `Pod` or `Deployment.apps`: how kube-apiserver names the kind in Invalid messages.
    pub fn qualified_kind(&self) -> String {
        qualify(self.kind, self.group)
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Whether the main resource ignores status changes (they go through `/status`).
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }

    /// The storage key prefix shared by every object of this resource, e.g. `apps/deployments`.
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("core/{}", self.plural)
        } else {
            format!("{}/{}", self.group, self.plural)
        }
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
/// kube-apiserver puts CRDs and the webhook configurations in `api-extensions`.
const API_EXTENSIONS: &[&str] = &["api-extensions"];

macro_rules! resource {
    ($group:literal, $kind:literal, $plural:literal, $singular:literal, $scope:ident,
     short = [$($short:literal),*], cats = $cats:expr, sub = [$($sub:literal),*]) => {
        Resource {
            group: $group,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            scope: Scope::$scope,
            categories: $cats,
            subresources: &[$($sub),*],
        }
    };
}

/// Every served resource, in discovery order (kubectl's `get all` follows it).
pub static RESOURCES: &[Resource] = &[
    resource!(
        "",
        "Pod",
        "pods",
        "pod",
        Namespaced,
        short = ["po"],
        cats = ALL,
        sub = [
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers"
        ]
    ),
    resource!(
        "",
        "Service",
        "services",
        "service",
        Namespaced,
        short = ["svc"],
        cats = ALL,
        sub = ["status"]
    ),
    resource!(
        "",
        "Namespace",
        "namespaces",
        "namespace",
        Cluster,
        short = ["ns"],
        cats = NONE,
        sub = ["status", "finalize"]
    ),
    resource!(
        "",
        "Node",
        "nodes",
        "node",
        Cluster,
        short = ["no"],
        cats = NONE,
        sub = ["status"]
    ),
    resource!(
        "",
        "Endpoints",
        "endpoints",
        "endpoints",
        Namespaced,
        short = ["ep"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "",
        "ConfigMap",
        "configmaps",
        "configmap",
        Namespaced,
        short = ["cm"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "",
        "Secret",
        "secrets",
        "secret",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        Namespaced,
        short = ["sa"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "",
        "Event",
        "events",
        "event",
        Namespaced,
        short = ["ev"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        Namespaced,
        short = ["deploy"],
        cats = ALL,
        sub = ["status", "scale"]
    ),
    resource!(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        Namespaced,
        short = ["rs"],
        cats = ALL,
        sub = ["status", "scale"]
    ),
    resource!(
        "apps",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        Namespaced,
        short = ["sts"],
        cats = ALL,
        sub = ["status", "scale"]
    ),
    resource!(
        "apps",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        Namespaced,
        short = ["ds"],
        cats = ALL,
        sub = ["status"]
    ),
    resource!(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        Cluster,
        short = ["csr"],
        cats = NONE,
        sub = ["status", "approval"]
    ),
    resource!(
        "networking.k8s.io",
        "Ingress",
        "ingresses",
        "ingress",
        Namespaced,
        short = ["ing"],
        cats = NONE,
        sub = ["status"]
    ),
    resource!(
        "networking.k8s.io",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        Cluster,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        Namespaced,
        short = ["netpol"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        Cluster,
        short = ["crd", "crds"],
        cats = API_EXTENSIONS,
        sub = ["status"]
    ),
    resource!(
        "apps",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "batch",
        "Job",
        "jobs",
        "job",
        Namespaced,
        short = [],
        cats = ALL,
        sub = ["status"]
    ),
    resource!(
        "batch",
        "CronJob",
        "cronjobs",
        "cronjob",
        Namespaced,
        short = ["cj"],
        cats = ALL,
        sub = ["status"]
    ),
    resource!(
        "",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        Namespaced,
        short = ["pvc"],
        cats = NONE,
        sub = ["status"]
    ),
    resource!(
        "",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        Namespaced,
        short = ["quota"],
        cats = NONE,
        sub = ["status"]
    ),
    resource!(
        "",
        "LimitRange",
        "limitranges",
        "limitrange",
        Namespaced,
        short = ["limits"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        Namespaced,
        short = ["pdb"],
        cats = NONE,
        sub = ["status"]
    ),
    resource!(
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        Cluster,
        short = ["pc"],
        cats = NONE,
        sub = []
    ),
    resource!(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        Cluster,
        short = [],
        cats = API_EXTENSIONS,
        sub = []
    ),
    resource!(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        Cluster,
        short = [],
        cats = API_EXTENSIONS,
        sub = []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "Role",
        "roles",
        "role",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        Cluster,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        Namespaced,
        short = [],
        cats = NONE,
        sub = []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        Cluster,
        short = [],
        cats = NONE,
        sub = []
    ),
];

/// The resource served at `/{prefix}/{group}/{version}/{plural}`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The API groups (other than core) with the versions they serve, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.qualified_resource(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        assert_eq!(by_kind("apps/v1", "Deployment"), Some(d));
        assert_eq!(by_kind("v1", "Deployment"), None);
        let p = lookup("", "v1", "pods").unwrap();
        assert_eq!(p.qualified_resource(), "pods");
        assert_eq!(p.key_prefix(), "core/pods");
        assert!(p.has_status());
    }

    #[test]
    fn plurals_are_unique_per_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.plural == b.plural),
                    "{}",
                    a.plural
                );
            }
        }
        assert_eq!(
            groups(),
            vec![
                "apps",
                "discovery.k8s.io",
                "coordination.k8s.io",
                "certificates.k8s.io",
                "networking.k8s.io",
                "apiextensions.k8s.io",
                "batch",
                "policy",
                "scheduling.k8s.io",
                "admissionregistration.k8s.io",
                "rbac.authorization.k8s.io"
            ]
        );
    }
}
