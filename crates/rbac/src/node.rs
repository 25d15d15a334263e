//! The Node authorizer (kube-apiserver's `--authorization-mode=Node`): a node agent
//! (`system:node:<name>` in `system:nodes`) may write only its own Node and Lease and the pods
//! bound to it, and read only the Secrets, ConfigMaps, PersistentVolumeClaims and service
//! accounts those pods reference. Everything else it may do is in the `system:node` rules.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use crate::{rules, Attributes, Decision, UserInfo, NODES};

/// The namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The pods bound to a node, as the server's store holds them.
pub trait PodsOnNode {
    /// Whether `f` holds for some pod of `namespace` whose `spec.nodeName` is `node`.
    fn any(&self, namespace: &str, node: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool;
}

/// The node a user is the agent of, if any.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    user.name
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty() && user.in_group(NODES))
}

/// What a pod refers to by name in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    Secret,
    ConfigMap,
    Claim,
    ServiceAccount,
}

/// Decides a node agent's request; `NoOpinion` for other users (RBAC decides) and for what
/// a node may not do. `node_rules` are the `system:node` ClusterRole's.
pub fn authorize(
    user: &UserInfo,
    a: &Attributes,
    node_rules: &[PolicyRule],
    pods: &dyn PodsOnNode,
) -> Decision {
    let Some(node) = node_name(user) else {
        return Decision::NoOpinion;
    };
    if !a.resource_request {
        return Decision::NoOpinion;
    }
    let reads = matches!(a.verb.as_str(), "get" | "list" | "watch");
    let referenced = |kind| {
        !a.name.is_empty()
            && pods.any(&a.namespace, node, &mut |pod| {
                references(pod, kind, &a.name)
            })
    };
    let allowed = match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "secrets", "") => reads && referenced(Reference::Secret),
        ("", "configmaps", "") => reads && referenced(Reference::ConfigMap),
        ("", "persistentvolumeclaims", "") => a.verb == "get" && referenced(Reference::Claim),
        ("", "serviceaccounts", "token") => {
            a.verb == "create" && referenced(Reference::ServiceAccount)
        }
        ("", "serviceaccounts", "") => a.verb == "get" && referenced(Reference::ServiceAccount),
        // A create names no object: `admit_create` checks the name in the body, as the
        // NodeRestriction admission plugin does.
        ("", "nodes", _) if !reads => {
            (a.name == node || a.verb == "create") && allowed_by(node_rules, a)
        }
        ("coordination.k8s.io", "leases", "") => {
            a.namespace == LEASE_NAMESPACE
                && (a.name == node || a.verb == "create")
                && matches!(
                    a.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                )
        }
        ("", "pods", "status") | ("", "pods", "") if a.verb != "create" && !reads => {
            bound_here(pods, node, a) && allowed_by(node_rules, a)
        }
        _ => allowed_by(node_rules, a),
    };
    if allowed {
        Decision::Allow(format!(
            "node {node:?} may {} {}",
            a.verb,
            a.combined_resource()
        ))
    } else {
        Decision::NoOpinion
    }
}

/// The NodeRestriction admission plugin's check of what a node creates: only its own Node
/// and its own Lease. `Err` holds the reason, for a 403.
pub fn admit_create(
    user: &UserInfo,
    group: &str,
    resource: &str,
    name: &str,
) -> Result<(), String> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    match (group, resource) {
        ("", "nodes") if name != node => Err(format!(
            "node {node:?} is not allowed to modify node {name:?}"
        )),
        ("coordination.k8s.io", "leases") if name != node => {
            Err("can only access node lease with the same name as the requesting node".to_string())
        }
        _ => Ok(()),
    }
}

fn allowed_by(rules: &[PolicyRule], a: &Attributes) -> bool {
    rules.iter().any(|r| rules::allows(r, a))
}

fn bound_here(pods: &dyn PodsOnNode, node: &str, a: &Attributes) -> bool {
    !a.name.is_empty()
        && pods.any(&a.namespace, node, &mut |pod| {
            pod["metadata"]["name"].as_str() == Some(a.name.as_str())
        })
}

/// Whether the pod's spec names `name` as a `kind` (volumes, projected sources, env,
/// envFrom, image pull secrets, its service account).
fn references(pod: &Value, kind: Reference, name: &str) -> bool {
    let spec = &pod["spec"];
    let is = |v: &Value| v.as_str() == Some(name);
    let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let volumes = items(&spec["volumes"]);
    let sources = volumes
        .iter()
        .flat_map(|v| items(&v["projected"]["sources"]))
        .collect::<Vec<_>>();
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| items(&spec[*k]))
        .collect::<Vec<_>>();
    let env = containers
        .iter()
        .flat_map(|c| items(&c["env"]))
        .collect::<Vec<_>>();
    let env_from = containers
        .iter()
        .flat_map(|c| items(&c["envFrom"]))
        .collect::<Vec<_>>();
    match kind {
        Reference::Secret => {
            volumes.iter().any(|v| is(&v["secret"]["secretName"]))
                || sources.iter().any(|s| is(&s["secret"]["name"]))
                || env
                    .iter()
                    .any(|e| is(&e["valueFrom"]["secretKeyRef"]["name"]))
                || env_from.iter().any(|e| is(&e["secretRef"]["name"]))
                || items(&spec["imagePullSecrets"])
                    .iter()
                    .any(|s| is(&s["name"]))
        }
        Reference::ConfigMap => {
            volumes.iter().any(|v| is(&v["configMap"]["name"]))
                || sources.iter().any(|s| is(&s["configMap"]["name"]))
                || env
                    .iter()
                    .any(|e| is(&e["valueFrom"]["configMapKeyRef"]["name"]))
                || env_from.iter().any(|e| is(&e["configMapRef"]["name"]))
        }
        Reference::Claim => volumes
            .iter()
            .any(|v| is(&v["persistentVolumeClaim"]["claimName"])),
        Reference::ServiceAccount => {
            let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
            sa == name
        }
    }
}

#[cfg(test)]
mod tests;
