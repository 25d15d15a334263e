use serde_json::json;

use super::*;
use crate::bootstrap;

struct Pods(Vec<Value>);

impl PodsOnNode for Pods {
    fn any(&self, namespace: &str, node: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool {
        self.0
            .iter()
            .filter(|p| {
                p["metadata"]["namespace"].as_str() == Some(namespace)
                    && p["spec"]["nodeName"].as_str() == Some(node)
            })
            .any(f)
    }
}

fn pods() -> Pods {
    Pods(vec![
        json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"nodeName": "n1", "serviceAccountName": "web-sa",
                "volumes": [{"name": "s", "secret": {"secretName": "tls"}},
                            {"name": "p", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
                            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "settings"}}],
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "password", "key": "p"}}}]}]}}),
        json!({"metadata": {"namespace": "default", "name": "db"},
            "spec": {"nodeName": "n2", "volumes": [{"name": "s", "secret": {"secretName": "db-secret"}}],
                "containers": [{"name": "c"}]}}),
    ])
}

fn node(name: &str) -> UserInfo {
    UserInfo::new(
        format!("system:node:{name}"),
        &["system:nodes", "system:authenticated"],
    )
}

fn ask(
    user: &UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    sub: &str,
    ns: &str,
    name: &str,
) -> bool {
    let a = Attributes::resource(verb, group, resource, sub, ns, name);
    authorize(user, &a, &bootstrap::node_rules(), &pods()).allowed()
}

#[test]
fn secrets_and_config_maps_of_its_own_pods_only() {
    let n1 = node("n1");
    for secret in ["tls", "password"] {
        assert!(
            ask(&n1, "get", "", "secrets", "", "default", secret),
            "{secret}"
        );
    }
    assert!(
        !ask(&n1, "get", "", "secrets", "", "default", "db-secret"),
        "another node's pod's"
    );
    assert!(ask(
        &node("n2"),
        "get",
        "",
        "secrets",
        "",
        "default",
        "db-secret"
    ));
    assert!(
        !ask(&n1, "get", "", "secrets", "", "other", "tls"),
        "same name, other namespace"
    );
    assert!(
        !ask(&n1, "list", "", "secrets", "", "default", ""),
        "no listing every secret"
    );
    assert!(!ask(&n1, "delete", "", "secrets", "", "default", "tls"));
    assert!(ask(&n1, "get", "", "configmaps", "", "default", "settings"));
    assert!(ask(
        &n1,
        "watch",
        "",
        "configmaps",
        "",
        "default",
        "kube-root-ca.crt"
    ));
    assert!(ask(
        &n1,
        "get",
        "",
        "persistentvolumeclaims",
        "",
        "default",
        "data"
    ));
    assert!(ask(
        &n1,
        "create",
        "",
        "serviceaccounts",
        "token",
        "default",
        "web-sa"
    ));
    assert!(!ask(
        &n1,
        "create",
        "",
        "serviceaccounts",
        "token",
        "default",
        "default"
    ));
    assert!(ask(
        &node("n2"),
        "create",
        "",
        "serviceaccounts",
        "token",
        "default",
        "default"
    ));
}

#[test]
fn own_node_lease_and_pods() {
    let n1 = node("n1");
    assert!(ask(&n1, "create", "", "nodes", "", "", ""));
    assert!(ask(
        &n1,
        "create",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-node-lease",
        ""
    ));
    assert!(!ask(
        &n1,
        "create",
        "coordination.k8s.io",
        "leases",
        "",
        "default",
        ""
    ));
    assert!(ask(&n1, "patch", "", "nodes", "status", "", "n1"));
    assert!(!ask(&n1, "patch", "", "nodes", "status", "", "n2"));
    assert!(!ask(&n1, "delete", "", "nodes", "", "", "n2"));
    assert!(ask(&n1, "list", "", "nodes", "", "", ""));
    assert!(ask(
        &n1,
        "update",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-node-lease",
        "n1"
    ));
    assert!(!ask(
        &n1,
        "update",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-node-lease",
        "n2"
    ));
    assert!(ask(&n1, "patch", "", "pods", "status", "default", "web"));
    assert!(!ask(&n1, "patch", "", "pods", "status", "default", "db"));
    assert!(ask(&n1, "delete", "", "pods", "", "default", "web"));
    assert!(!ask(&n1, "delete", "", "pods", "", "default", "db"));
    assert!(ask(&n1, "watch", "", "pods", "", "", ""));
    assert!(ask(
        &n1,
        "list",
        "discovery.k8s.io",
        "endpointslices",
        "",
        "",
        ""
    ));
    assert!(ask(&n1, "create", "", "events", "", "default", ""));
    assert!(!ask(
        &n1,
        "create",
        "apps",
        "deployments",
        "",
        "default",
        ""
    ));
    assert!(!ask(
        &n1,
        "list",
        "rbac.authorization.k8s.io",
        "roles",
        "",
        "",
        ""
    ));
}

#[test]
fn a_node_creates_only_its_own_node_and_lease() {
    let n1 = node("n1");
    assert_eq!(admit_create(&n1, "", "nodes", "n1"), Ok(()));
    assert_eq!(
        admit_create(&n1, "", "nodes", "n2"),
        Err(r#"node "n1" is not allowed to modify node "n2""#.to_string())
    );
    assert_eq!(
        admit_create(&n1, "coordination.k8s.io", "leases", "n1"),
        Ok(())
    );
    assert!(admit_create(&n1, "coordination.k8s.io", "leases", "n2").is_err());
    assert_eq!(admit_create(&n1, "", "events", "n2.17f"), Ok(()));
    let admin = UserInfo::new("kubernetes-admin", &["system:masters"]);
    assert_eq!(admit_create(&admin, "", "nodes", "n2"), Ok(()));
}

#[test]
fn other_users_get_no_opinion() {
    let not_in_group = UserInfo::new("system:node:n1", &["system:authenticated"]);
    assert!(!ask(&not_in_group, "list", "", "nodes", "", "", ""));
    assert_eq!(node_name(&node("n1")), Some("n1"));
    assert_eq!(node_name(&UserInfo::new("alice", &["system:nodes"])), None);
}
