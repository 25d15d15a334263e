//! Helpers shared by the add-ons' objects.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// A typed object from its JSON; the add-ons' literals are well-formed.
pub fn typed<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("add-on objects are well-formed")
}

/// An object as the JSON `kubectl apply` takes, `apiVersion` and `kind` included.
pub(crate) fn value(obj: &impl Serialize) -> Value {
    serde_json::to_value(obj).expect("objects serialize")
}

/// A least-privilege ClusterRole and its ClusterRoleBinding to one service account.
pub fn cluster_role_and_binding(
    name: &str,
    rules: Value,
    namespace: &str,
    service_account: &str,
) -> (ClusterRole, ClusterRoleBinding) {
    let role = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules,
    }));
    let binding = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }));
    (role, binding)
}

/// A ServiceAccount.
pub(crate) fn service_account(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": namespace}})
}

/// Objects as one multi-document YAML stream, as `kubectl apply -f -` reads it.
pub fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).expect("objects serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A DaemonSet running `container` on every node in the node's network namespace, as
/// kube-proxy's: host network, critical priority, every taint tolerated, and the node's name
/// in `NODE_NAME` and its address in `NODE_IP` (downward API).
pub(crate) fn node_daemon_set(namespace: &str, name: &str, mut container: Value) -> Value {
    let labels = json!({"k8s-app": name});
    container["env"] = json!([
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
    ]);
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": name,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                },
            },
        },
    })
}
