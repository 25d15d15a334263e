//! The NetworkPolicy enforcer as a DaemonSet: every node's policies as one nftables table in
//! the node's network namespace, filtering its pods' traffic.

use serde_json::{json, Value};

use crate::objects::{self, cluster_role_and_binding, node_daemon_set, value};

pub const NAMESPACE: &str = "kube-system";
/// The DaemonSet, ServiceAccount and ClusterRole(Binding).
pub const NAME: &str = "kinet-policy";

/// What the enforcer reads (policies and the pods and namespaces they select) and writes
/// (Events on refused policies and on its Node), as kube-router's and Calico's node roles,
/// less what kinet does not use.
pub fn rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ])
}

fn container() -> Value {
    json!({
        "name": NAME,
        "image": kinet_images::POLICY_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        // As kube-proxy's DaemonSet: netfilter writes, and setns (netlink sockets and
        // `iptables-restore` opened in the node's namespace) need more than NET_ADMIN.
        "securityContext": {"privileged": true},
    })
}

/// Every object of the policy add-on, for `kinet manifests policy`.
pub fn objects() -> Vec<Value> {
    let (role, binding) = cluster_role_and_binding(NAME, rules(), NAMESPACE, NAME);
    vec![
        objects::service_account(NAMESPACE, NAME),
        value(&role),
        value(&binding),
        node_daemon_set(NAMESPACE, NAME, container()),
    ]
}
