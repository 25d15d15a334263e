//! Issue 16 part 1: RBAC served and enforced, tried as a new user would. Release manifests'
//! RBAC objects (in the shape of ingress-nginx's, MetalLB's and CoreDNS's, in our own text)
//! apply with kubectl; a service account with no bindings is refused with kube-apiserver's
//! 403 until bound to `view`, which never reads Secrets; `kubectl auth can-i --as` answers;
//! a node agent's credentials read only the Secrets of pods bound to its node.

use std::time::{Duration, Instant};

use crate::harness::Cluster;
use crate::pods::apply;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ingress-nginx, namespace: ingress-nginx}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ingress-nginx
  labels: {app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}
rules:
- apiGroups: [""]
  resources: [configmaps, endpoints, nodes, pods, secrets, namespaces]
  verbs: [list, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ingress-nginx}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ingress-nginx}
subjects:
- {kind: ServiceAccount, name: ingress-nginx, namespace: ingress-nginx}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ingress-nginx, namespace: ingress-nginx}
rules:
- apiGroups: [""]
  resources: [configmaps, pods, secrets, endpoints]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [ingress-nginx-controller]
  verbs: [get, update]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [ingress-nginx-leader]
  verbs: [get, update]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ingress-nginx, namespace: ingress-nginx}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ingress-nginx}
subjects:
- {kind: ServiceAccount, name: ingress-nginx, namespace: ingress-nginx}
---
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: controller, namespace: metallb-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "metallb-system:controller"}
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services/status]
  verbs: [update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metallb-system:controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "metallb-system:controller"}
subjects:
- {kind: ServiceAccount, name: controller, namespace: metallb-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: controller, namespace: metallb-system}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [memberlist]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: controller, namespace: metallb-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: controller}
subjects:
- {kind: ServiceAccount, name: controller, namespace: metallb-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
  annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, watch]
"#;

fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rbac_is_served_and_enforced() {
    let c = Cluster::up(2);
    apply(&c, MANIFESTS);
    let roles = c.kubectl_ok(&["get", "clusterrolebindings", "-o", "wide"]);
    assert!(
        roles.contains("ClusterRole/metallb-system:controller")
            && roles.contains("metallb-system:controller"),
        "{roles}"
    );
    // Aggregation: `view` gathers the rules of ClusterRoles labelled aggregate-to-view.
    poll("view to aggregate widgets-view", || {
        c.kubectl_ok(&["get", "clusterrole", "view", "-o", "jsonpath={.rules}"])
            .contains("example.com")
    });

    // A service account with no bindings: 403 with kube-apiserver's text.
    c.kubectl_ok(&["create", "serviceaccount", "x"]);
    let token = c.kubectl_ok(&["create", "token", "x"]).trim().to_string();
    let as_x = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend(args);
        c.kubectl(&all)
    };
    let refused = as_x(&["get", "secrets"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:default:x" cannot list resource "secrets" in API group "" in the namespace "default""#),
        "{}",
        stderr(&refused)
    );
    let can_i = |verb: &str, what: &str| {
        let out = c.kubectl(&[
            "auth",
            "can-i",
            "--as=system:serviceaccount:default:x",
            verb,
            what,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can_i("list", "pods"), "no");

    // Bound to `view` in its namespace: reads Pods, never Secrets.
    c.kubectl_ok(&[
        "create",
        "rolebinding",
        "x-view",
        "--clusterrole=view",
        "--serviceaccount=default:x",
    ]);
    assert_eq!(can_i("list", "pods"), "yes");
    assert_eq!(can_i("list", "secrets"), "no");
    assert!(
        as_x(&["get", "pods"]).status.success(),
        "{}",
        stderr(&as_x(&["get", "pods"]))
    );
    assert!(!as_x(&["get", "secrets"]).status.success());
    assert!(!as_x(&["get", "pods", "-n", "kube-system"]).status.success());
    // It cannot grant itself more (escalation check).
    let escalate = as_x(&[
        "create",
        "rolebinding",
        "x-admin",
        "--clusterrole=admin",
        "--serviceaccount=default:x",
    ]);
    assert!(!escalate.status.success());
    assert!(
        stderr(&escalate).contains("forbidden"),
        "{}",
        stderr(&escalate)
    );

    // Node credentials: only the Secrets of pods bound to that node.
    let nodes = c.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
    let nodes: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "pinned",
        "--from-literal=k=v",
    ]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: pinned}}
spec:
  nodeName: {}
  containers: [{{name: c, image: nginx}}]
  volumes: [{{name: s, secret: {{secretName: pinned}}}}]
"#,
            nodes[0]
        ),
    );
    let as_node = |node: &str| {
        let kubeconfig = c.state_dir().join("nodes").join(node).join("kubeconfig");
        c.kubectl(&[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "secret",
            "pinned",
        ])
    };
    let own = as_node(nodes[0]);
    assert!(own.status.success(), "{}", stderr(&own));
    let other = as_node(nodes[1]);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains(&format!(
            r#"secrets "pinned" is forbidden: User "system:node:{}" cannot get resource "secrets" in API group "" in the namespace "default""#,
            nodes[1]
        )),
        "{}",
        stderr(&other)
    );
}
