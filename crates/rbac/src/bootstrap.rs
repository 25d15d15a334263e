//! kube-apiserver's bootstrap policy (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`): the
//! default ClusterRoles and ClusterRoleBindings every cluster starts with, abridged to the
//! resources kinet serves and the ones real manifests name.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{json, Value};

use crate::{controllers, AUTHENTICATED, GROUP, MASTERS, UNAUTHENTICATED};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";
const NODE_CLIENT_ROLE: &str = "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
const SELF_NODE_CLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A rule on resources of some groups.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// A rule on non-resource URLs.
pub fn urls(paths: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(strings(paths)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// The `system:node` rules the Node authorizer applies beyond its own graph checks; as
/// kube's `NodeRules`, plus what kinet's agent runs for kube-proxy and the policy enforcer
/// (`system:node-proxier`'s reads, NetworkPolicies and Namespaces).
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &["nodes"],
            &[
                "create", "get", "list", "watch", "patch", "update", "delete",
            ],
        ),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &[""],
            &["pods"],
            &["get", "list", "watch", "create", "delete"],
        ),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["services", "endpoints", "namespaces"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["networking.k8s.io"], &["networkpolicies"], READ),
        rule(
            &["", "events.k8s.io"],
            &["events"],
            &["create", "patch", "update"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
            &["create"],
        ),
    ]
}

fn cluster_role(name: &str, labels: Value, rules: Vec<PolicyRule>) -> Value {
    let mut metadata = metadata(name);
    if let (Some(all), Value::Object(more)) = (metadata["labels"].as_object_mut(), labels) {
        all.extend(more);
    }
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole", "metadata": metadata, "rules": rules})
}

fn aggregated(name: &str, labels: Value) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("{AGGREGATE_TO}{name}"): "true"}}]});
    role
}

fn aggregates_to(name: &str) -> Value {
    json!({format!("{AGGREGATE_TO}{name}"): "true"})
}

fn concat(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    a.iter().chain(b).copied().collect()
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let read_write = concat(READ, WRITE);
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![urls(
                // `/cacerts` is kinet's (as k3s's): a joining host checks the CA it pinned.
                &[
                    "/cacerts",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:node-bootstrapper",
            json!({}),
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        // What the CSR approver asks a SubjectAccessReview about before approving a node's
        // client certificate: a new node's, or a renewal by the node itself.
        cluster_role(
            NODE_CLIENT_ROLE,
            json!({}),
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            SELF_NODE_CLIENT_ROLE,
            json!({}),
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            json!({}),
            vec![urls(
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
                &["get"],
            )],
        ),
        aggregated("admin", json!({})),
        aggregated("edit", aggregates_to("admin")),
        aggregated("view", aggregates_to("edit")),
        cluster_role(
            "system:aggregate-to-admin",
            aggregates_to("admin"),
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(&[GROUP], &["rolebindings", "roles"], &read_write),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            aggregates_to("edit"),
            vec![
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                    WRITE,
                ),
                rule(
                    &[""],
                    &["pods/eviction", "serviceaccounts/token"],
                    &["create"],
                ),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], &read_write),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            aggregates_to("view"),
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        cluster_role("system:node", json!({}), node_rules()),
        cluster_role(
            controllers::SCHEDULER,
            json!({}),
            controllers::scheduler_rules(),
        ),
    ]
    .into_iter()
    .chain(
        controllers::controller_roles()
            .into_iter()
            .map(|(name, rules)| cluster_role(&controller_role(name), json!({}), rules)),
    )
    .collect()
}

fn controller_role(name: &str) -> String {
    format!("{}{name}", controllers::ROLE_PREFIX)
}

fn metadata(name: &str) -> Value {
    json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

/// A binding of kind `kind` (ClusterRoleBinding or RoleBinding) of the role `role` of the same
/// kind's scope and name.
fn binding(kind: &str, role: &str, subjects: Vec<Value>) -> Value {
    let role_kind = kind.trim_end_matches("Binding");
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": kind, "metadata": metadata(role),
        "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
        "subjects": subjects})
}

fn controller_account(name: &str) -> Vec<Value> {
    vec![json!({"kind": "ServiceAccount", "name": name, "namespace": controllers::NAMESPACE})]
}

/// The Roles and RoleBindings kube-apiserver keeps in `kube-system`: the controllers' that
/// need rights only there.
pub fn namespaced() -> (Vec<Value>, Vec<Value>) {
    controllers::namespaced_roles()
        .into_iter()
        .map(|(name, rules)| {
            let role = controller_role(name);
            let mut meta = metadata(&role);
            meta["namespace"] = json!(controllers::NAMESPACE);
            let object = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Role",
                "metadata": meta, "rules": rules});
            let mut bound = binding("RoleBinding", &role, controller_account(name));
            bound["metadata"]["namespace"] = json!(controllers::NAMESPACE);
            (object, bound)
        })
        .unzip()
}

/// A ClusterRoleBinding of `role` (of the same name) to groups.
fn bind_groups(role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
        .collect();
    binding("ClusterRoleBinding", role, subjects)
}

/// The default ClusterRoleBindings. `system:node` is not bound: the Node authorizer applies it.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        bind_groups("cluster-admin", &[MASTERS]),
        bind_groups("system:discovery", &[AUTHENTICATED]),
        bind_groups("system:basic-user", &[AUTHENTICATED]),
        bind_groups(
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
        bind_groups("system:monitoring", &["system:monitoring"]),
        // kubeadm binds its bootstrap tokens' group the same way (kubeadm:kubelet-bootstrap).
        bind_groups("system:node-bootstrapper", &["system:bootstrappers"]),
        binding(
            "ClusterRoleBinding",
            controllers::SCHEDULER,
            vec![json!({"apiGroup": GROUP, "kind": "User", "name": controllers::SCHEDULER})],
        ),
        // kubeadm's kubeadm:node-autoapprove-bootstrap and …-certificate-rotation.
        bind_groups(NODE_CLIENT_ROLE, &["system:bootstrappers"]),
        bind_groups(SELF_NODE_CLIENT_ROLE, &["system:nodes"]),
    ]
    .into_iter()
    .chain(
        controllers::controller_roles()
            .into_iter()
            .map(|(name, _)| {
                binding(
                    "ClusterRoleBinding",
                    &controller_role(name),
                    controller_account(name),
                )
            }),
    )
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Graph, Objects};
    use crate::{aggregate, Attributes, UserInfo};

    /// The bootstrap policy as a graph, with aggregation applied.
    fn graph() -> Graph {
        let mut roles = cluster_roles();
        let refs: Vec<&Value> = roles.iter().collect();
        let filled = aggregate::pending(&refs);
        for (name, rules) in filled {
            let role = roles
                .iter_mut()
                .find(|r| r["metadata"]["name"] == name.as_str())
                .unwrap();
            role["rules"] = serde_json::to_value(rules).unwrap();
        }
        let bindings = cluster_role_bindings();
        let (ns_roles, ns_bindings) = namespaced();
        Graph::build(Objects {
            cluster_roles: &roles.iter().collect::<Vec<_>>(),
            cluster_role_bindings: &bindings.iter().collect::<Vec<_>>(),
            roles: &ns_roles.iter().collect::<Vec<_>>(),
            role_bindings: &ns_bindings.iter().collect::<Vec<_>>(),
        })
    }

    /// A control-plane identity by user name, with its groups.
    fn identity(name: &str) -> UserInfo {
        let (name, groups) = controllers::identities()
            .into_iter()
            .find(|(user, _)| user.ends_with(name))
            .unwrap();
        UserInfo { name, groups }
    }

    #[test]
    fn controllers_may_do_their_job_and_nothing_else() {
        let g = graph();
        let can = |who: &str, verb, group, resource: &str, ns| {
            let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
            let a = Attributes::resource(verb, group, resource, sub, ns, "x");
            g.authorize(&identity(who), &a).allowed()
        };
        let deployments = ":deployment-controller";
        assert!(can(deployments, "create", "apps", "replicasets", "default"));
        assert!(can(deployments, "patch", "apps", "deployments/status", "a"));
        assert!(!can(deployments, "create", "", "pods", "default"));
        assert!(!can(deployments, "list", "", "secrets", "default"));
        assert!(!can(deployments, "delete", "", "namespaces", ""));
        assert!(can(":replicaset-controller", "create", "", "pods", "a"));
        assert!(!can(":replicaset-controller", "update", "", "nodes", ""));
        assert!(can(
            ":namespace-controller",
            "deletecollection",
            "x.io",
            "things",
            "a"
        ));
        assert!(!can(":namespace-controller", "create", "", "pods", "a"));
        assert!(can(
            ":token-cleaner",
            "delete",
            "",
            "secrets",
            "kube-system"
        ));
        assert!(
            !can(":token-cleaner", "delete", "", "secrets", "default"),
            "the token cleaner's Role is kube-system's only"
        );
        assert!(can(
            controllers::SCHEDULER,
            "create",
            "",
            "pods/binding",
            "a"
        ));
        assert!(!can(controllers::SCHEDULER, "create", "", "pods", "a"));
        let pool = |name: &str| {
            let a = Attributes::resource("get", "", "configmaps", "", "kube-system", name);
            g.authorize(&identity(":service-controller"), &a).allowed()
        };
        assert!(pool("kinet-loadbalancer") && !pool("other"));
    }

    #[test]
    fn every_controller_identity_is_bound() {
        let g = graph();
        for (user, groups) in controllers::identities() {
            let who = UserInfo {
                name: user.clone(),
                groups,
            };
            let rules = g.rules_for(&who, "kube-system");
            assert!(!rules.is_empty(), "{user} holds no rules");
        }
    }

    #[test]
    fn masters_do_anything_and_everyone_discovers() {
        let g = graph();
        let admin = UserInfo::new("kubernetes-admin", &[MASTERS, AUTHENTICATED]);
        assert!(g
            .authorize(
                &admin,
                &Attributes::resource("delete", "apps", "deployments", "", "x", "y")
            )
            .allowed());
        assert!(g
            .authorize(&admin, &Attributes::non_resource("get", "/metrics"))
            .allowed());
        let bob = UserInfo::new("bob", &[AUTHENTICATED]);
        assert!(g
            .authorize(&bob, &Attributes::non_resource("get", "/apis/apps/v1"))
            .allowed());
        assert!(g
            .authorize(
                &bob,
                &Attributes::resource(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                    ""
                )
            )
            .allowed());
        assert!(!g
            .authorize(&bob, &Attributes::non_resource("get", "/metrics"))
            .allowed());
        assert!(!g
            .authorize(
                &bob,
                &Attributes::resource("list", "", "pods", "", "default", "")
            )
            .allowed());
        let anonymous = UserInfo::new("system:anonymous", &[UNAUTHENTICATED]);
        assert!(g
            .authorize(&anonymous, &Attributes::non_resource("get", "/version"))
            .allowed());
        assert!(!g
            .authorize(&anonymous, &Attributes::non_resource("get", "/api"))
            .allowed());
    }

    #[test]
    fn bootstrap_tokens_only_ask_for_certificates() {
        let g = graph();
        let joiner = UserInfo::new(
            "system:bootstrap:abcdef",
            &["system:bootstrappers", AUTHENTICATED],
        );
        let csr = |verb| {
            Attributes::resource(
                verb,
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                "",
                "",
            )
        };
        assert!(g.authorize(&joiner, &csr("create")).allowed());
        assert!(g.authorize(&joiner, &csr("watch")).allowed());
        assert!(!g.authorize(&joiner, &csr("delete")).allowed());
        let approval = Attributes::resource(
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests",
            "approval",
            "",
            "n",
        );
        assert!(!g.authorize(&joiner, &approval).allowed());
        // What the CSR approver's SubjectAccessReviews ask.
        let client = |sub| {
            Attributes::resource(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                sub,
                "",
                "",
            )
        };
        assert!(g.authorize(&joiner, &client("nodeclient")).allowed());
        assert!(!g.authorize(&joiner, &client("selfnodeclient")).allowed());
        let node = UserInfo::new("system:node:n", &["system:nodes", AUTHENTICATED]);
        assert!(g.authorize(&node, &client("selfnodeclient")).allowed());
        assert!(!g.authorize(&node, &client("nodeclient")).allowed());
        let bob = UserInfo::new("bob", &[AUTHENTICATED]);
        assert!(!g.authorize(&bob, &client("nodeclient")).allowed());
        assert!(!g
            .authorize(
                &joiner,
                &Attributes::resource("get", "", "pods", "", "default", "")
            )
            .allowed());
        let anonymous = UserInfo::new("system:anonymous", &[UNAUTHENTICATED]);
        assert!(g
            .authorize(&anonymous, &Attributes::non_resource("get", "/cacerts"))
            .allowed());
    }

    #[test]
    fn view_edit_and_admin_are_aggregated_and_nested() {
        let roles = cluster_roles();
        let refs: Vec<&Value> = roles.iter().collect();
        let filled: std::collections::HashMap<String, Vec<PolicyRule>> =
            aggregate::pending(&refs).into_iter().collect();
        let can = |role: &str, verb, group, resource: &str| {
            let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
            let a = Attributes::resource(verb, group, resource, sub, "ns", "x");
            filled[role].iter().any(|r| crate::rules::allows(r, &a))
        };
        assert!(can("view", "list", "", "pods"));
        assert!(can("view", "get", "", "pods/log"));
        assert!(
            !can("view", "list", "", "secrets"),
            "view never reads secrets"
        );
        assert!(!can("view", "create", "", "pods"));
        assert!(can("edit", "list", "", "secrets"));
        assert!(can("edit", "create", "apps", "deployments"));
        assert!(can("edit", "list", "", "pods"), "edit holds view's rules");
        assert!(!can("edit", "create", GROUP, "rolebindings"));
        assert!(can("admin", "create", GROUP, "rolebindings"));
        assert!(
            can("admin", "list", "", "pods"),
            "admin holds edit's and view's"
        );
    }
}
