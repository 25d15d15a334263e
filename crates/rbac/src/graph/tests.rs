use serde_json::json;

use super::*;

fn role(ns: &str, name: &str, resources: &[&str], verbs: &[&str]) -> Value {
    json!({"metadata": {"namespace": ns, "name": name},
        "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]})
}

fn binding(ns: Option<&str>, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"metadata": {"namespace": ns, "name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects})
}

fn sa(ns: &str, name: &str) -> UserInfo {
    UserInfo::new(
        format!("system:serviceaccount:{ns}:{name}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
            "system:authenticated",
        ],
    )
}

fn list(ns: &str, resource: &str) -> Attributes {
    Attributes::resource("list", "", resource, "", ns, "")
}

#[test]
fn role_bindings_grant_in_their_namespace_only() {
    let roles = [role("default", "reader", &["pods"], &["get", "list"])];
    let bindings = [binding(
        Some("default"),
        "read",
        "Role",
        "reader",
        json!([{"kind": "ServiceAccount", "name": "x", "namespace": "default"}]),
    )];
    let g = Graph::build(Objects {
        roles: &roles.iter().collect::<Vec<_>>(),
        role_bindings: &bindings.iter().collect::<Vec<_>>(),
        ..Objects::default()
    });
    let x = sa("default", "x");
    assert_eq!(
        g.authorize(&x, &list("default", "pods")),
        Decision::Allow(
            "RBAC: allowed by RoleBinding \"read/default\" of Role \"reader\" to ServiceAccount \"x/default\"".into()
        )
    );
    assert!(!g.authorize(&x, &list("other", "pods")).allowed());
    assert!(
        !g.authorize(&x, &list("", "pods")).allowed(),
        "not cluster-wide"
    );
    assert!(!g.authorize(&x, &list("default", "secrets")).allowed());
    assert!(!g
        .authorize(&sa("default", "y"), &list("default", "pods"))
        .allowed());
}

#[test]
fn cluster_roles_through_both_kinds_of_binding() {
    let view = json!({"metadata": {"name": "view"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]});
    let rb = binding(
        Some("ns1"),
        "v",
        "ClusterRole",
        "view",
        json!([{"kind": "ServiceAccount", "name": "x"}]),
    );
    let crb = binding(
        None,
        "all",
        "ClusterRole",
        "view",
        json!([{"kind": "Group", "name": "system:serviceaccounts:ns2"}, {"kind": "User", "name": "alice"}]),
    );
    let g = Graph::build(Objects {
        cluster_roles: &[&view],
        role_bindings: &[&rb],
        cluster_role_bindings: &[&crb],
        ..Objects::default()
    });
    // The RoleBinding's service account defaults to the binding's namespace.
    assert!(g.authorize(&sa("ns1", "x"), &list("ns1", "pods")).allowed());
    assert!(!g.authorize(&sa("ns1", "x"), &list("ns3", "pods")).allowed());
    // Everyone in ns2 may list pods anywhere, through the group.
    assert!(g
        .authorize(&sa("ns2", "any"), &list("ns3", "pods"))
        .allowed());
    assert!(g.authorize(&sa("ns2", "any"), &list("", "pods")).allowed());
    assert!(g
        .authorize(&UserInfo::new("alice", &[]), &list("", "pods"))
        .allowed());
    assert!(!g
        .authorize(&UserInfo::new("bob", &[]), &list("", "pods"))
        .allowed());
    assert_eq!(g.rules_for(&sa("ns1", "x"), "ns1").len(), 1);
    assert!(g.rules_for(&sa("ns1", "x"), "ns2").is_empty());
}

#[test]
fn dangling_references_grant_nothing() {
    let rb = binding(
        Some("ns1"),
        "v",
        "Role",
        "missing",
        json!([{"kind": "User", "name": "alice"}]),
    );
    let crb = binding(
        None,
        "c",
        "Role",
        "reader",
        json!([{"kind": "User", "name": "alice"}]),
    );
    let roles = [role("", "reader", &["pods"], &["list"])];
    let g = Graph::build(Objects {
        roles: &roles.iter().collect::<Vec<_>>(),
        role_bindings: &[&rb],
        cluster_role_bindings: &[&crb],
        ..Objects::default()
    });
    assert!(!g
        .authorize(&UserInfo::new("alice", &[]), &list("ns1", "pods"))
        .allowed());
    assert!(!g
        .authorize(&UserInfo::new("alice", &[]), &list("", "pods"))
        .allowed());
}

#[test]
fn roles_are_kept_for_the_escalation_check() {
    let roles = [role("default", "reader", &["pods"], &["get"])];
    let cluster_roles = [role("", "viewer", &["services"], &["list"])];
    let g = Graph::build(Objects {
        roles: &roles.iter().collect::<Vec<_>>(),
        cluster_roles: &cluster_roles.iter().collect::<Vec<_>>(),
        ..Objects::default()
    });
    let reader = g.role_rules("Role", "default", "reader").unwrap();
    assert_eq!(reader[0].resources, Some(vec!["pods".to_string()]));
    assert!(g.role_rules("Role", "other", "reader").is_none());
    let viewer = g.role_rules("ClusterRole", "default", "viewer").unwrap();
    assert_eq!(viewer[0].verbs, ["list"]);
    assert!(g.role_rules("ClusterRole", "", "reader").is_none());
}
