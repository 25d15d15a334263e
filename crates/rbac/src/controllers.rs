//! The control loops' own identities and least-privilege roles, as kube-controller-manager
//! runs with `--use-service-account-credentials`: each controller is the service account
//! `kube-system:<name>`, bound to the ClusterRole `system:controller:<name>` of kube's
//! `bootstrappolicy/controller_policy.go`; the scheduler is the user `system:kube-scheduler`
//! with the ClusterRole of that name (`bootstrappolicy/policy.go`).
//!
//! Upstream's rules come first in each role, as upstream writes them. Two kinds of rule are
//! kinet's own, each marked: `list`/`watch` for what a loop's reflectors read (upstream reads
//! those through shared informers that run as kube-controller-manager itself), and `patch` on
//! the status subresources kinet's loops write with merge patches where upstream's update.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::bootstrap::rule;

/// The namespace of the controllers' service accounts.
pub const NAMESPACE: &str = "kube-system";
/// The prefix of every controller's ClusterRole.
pub const ROLE_PREFIX: &str = "system:controller:";
/// The scheduler's user, and its ClusterRole's name.
pub const SCHEDULER: &str = "system:kube-scheduler";

const READ: &[&str] = &["get", "list", "watch"];
const LIST_WATCH: &[&str] = &["list", "watch"];
const ALL_WRITES: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Upstream's `eventsRule()`.
fn events() -> PolicyRule {
    rule(
        &["", "events.k8s.io"],
        &["events"],
        &["create", "update", "patch"],
    )
}

/// A rule limited to objects of the given names.
fn named(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(names.iter().map(|n| n.to_string()).collect()),
        ..rule(groups, resources, verbs)
    }
}

/// `system:serviceaccount:kube-system:<name>`: who the controller `name` is.
pub fn user(name: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE}:{name}")
}

/// The controllers' ClusterRoles, by the name their service account has (the role is
/// [`ROLE_PREFIX`] + name).
pub fn controller_roles() -> Vec<(&'static str, Vec<PolicyRule>)> {
    let apps = &["extensions", "apps"];
    vec![
        (
            "cronjob-controller",
            vec![
                rule(
                    &["batch"],
                    &["cronjobs"],
                    &["get", "list", "watch", "update"],
                ),
                rule(&["batch"], &["jobs"], ALL_WRITES),
                rule(&["batch"], &["cronjobs/status"], &["update"]),
                rule(&["batch"], &["cronjobs/finalizers"], &["update"]),
                rule(&[""], &["pods"], &["list", "watch", "delete"]),
                events(),
                // kinet: status is merge-patched.
                rule(&["batch"], &["cronjobs/status"], &["patch"]),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule(apps, &["daemonsets"], READ),
                rule(apps, &["daemonsets/status"], &["update"]),
                rule(apps, &["daemonsets/finalizers"], &["update"]),
                rule(&[""], &["nodes"], LIST_WATCH),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "create", "delete", "patch"],
                ),
                rule(&[""], &["pods/binding"], &["create"]),
                rule(&["apps"], &["controllerrevisions"], ALL_WRITES),
                events(),
                // kinet: status is merge-patched.
                rule(apps, &["daemonsets/status"], &["patch"]),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(apps, &["deployments"], &["get", "list", "watch", "update"]),
                rule(apps, &["deployments/status"], &["update"]),
                rule(apps, &["deployments/finalizers"], &["update"]),
                rule(apps, &["replicasets"], ALL_WRITES),
                rule(&[""], &["pods"], &["get", "list", "watch", "update"]),
                events(),
                // kinet: the revision annotation and status are merge-patched.
                rule(apps, &["deployments", "deployments/status"], &["patch"]),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(apps, &["deployments"], READ),
                rule(apps, &["replicasets"], READ),
                rule(&[""], &["replicationcontrollers"], READ),
                rule(&["policy"], &["poddisruptionbudgets"], READ),
                rule(&["apps"], &["statefulsets"], READ),
                rule(&["policy"], &["poddisruptionbudgets/status"], &["update"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&["*"], &["*/scale"], &["get"]),
                events(),
                // kinet: the loop lists pods itself, and merge-patches status.
                rule(&[""], &["pods"], LIST_WATCH),
                rule(&["policy"], &["poddisruptionbudgets/status"], &["patch"]),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(&[""], &["services", "pods"], READ),
                rule(
                    &[""],
                    &["endpoints"],
                    &["get", "list", "watch", "create", "update", "delete"],
                ),
                rule(&[""], &["endpoints/restricted"], &["create"]),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(&[""], &["services", "pods", "nodes"], READ),
                rule(&[""], &["services/finalizers"], &["update"]),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["get", "list", "watch", "create", "update", "delete"],
                ),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                rule(
                    &["*"],
                    &["*"],
                    &["get", "list", "watch", "patch", "update", "delete"],
                ),
                events(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(
                    &["batch"],
                    &["jobs"],
                    &["get", "list", "watch", "update", "patch"],
                ),
                rule(&["batch"], &["jobs/status"], &["update"]),
                rule(&["batch"], &["jobs/finalizers"], &["update"]),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "create", "delete", "patch"],
                ),
                events(),
                // kinet: status is merge-patched, and this loop also deletes finished Jobs
                // after `ttlSecondsAfterFinished` (upstream's ttl-after-finished-controller).
                rule(&["batch"], &["jobs/status"], &["patch"]),
                rule(&["batch"], &["jobs"], &["delete"]),
            ],
        ),
        (
            "namespace-controller",
            vec![
                rule(&[""], &["namespaces"], &["get", "list", "watch", "delete"]),
                rule(
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                    &["update"],
                ),
                rule(
                    &["*"],
                    &["*"],
                    &["get", "list", "watch", "delete", "deletecollection"],
                ),
            ],
        ),
        (
            // Node lifecycle and node IPAM both run as this account upstream.
            "node-controller",
            vec![
                rule(
                    &[""],
                    &["nodes"],
                    &["get", "list", "watch", "update", "delete", "patch"],
                ),
                rule(&[""], &["nodes/status"], &["patch", "update"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&[""], &["pods"], &["list", "watch", "get", "delete"]),
                events(),
                // kinet: node health is read from the agents' Leases.
                rule(&["coordination.k8s.io"], &["leases"], LIST_WATCH),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "watch", "update", "create", "delete"],
                ),
                rule(&[""], &["persistentvolumes/status"], &["update"]),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "watch", "update"],
                ),
                rule(&[""], &["persistentvolumeclaims/status"], &["update"]),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "get", "create", "delete"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(&[""], &["nodes"], LIST_WATCH),
                events(),
                rule(&[""], &["events"], &["watch"]),
                rule(&[""], &["services"], &["get"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(apps, &["replicasets"], &["get", "list", "watch", "update"]),
                rule(apps, &["replicasets/status"], &["update"]),
                rule(apps, &["replicasets/finalizers"], &["update"]),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "patch", "create", "delete"],
                ),
                events(),
                // kinet: status is merge-patched.
                rule(apps, &["replicasets/status"], &["patch"]),
            ],
        ),
        (
            "service-account-controller",
            vec![
                rule(&[""], &["serviceaccounts"], &["create"]),
                events(),
                // kinet: what the loop watches and looks up.
                rule(&[""], &["namespaces"], LIST_WATCH),
                rule(&[""], &["serviceaccounts"], READ),
            ],
        ),
        (
            "service-controller",
            vec![
                rule(&[""], &["services"], READ),
                rule(&[""], &["services/status"], &["patch", "update"]),
                rule(&[""], &["nodes"], LIST_WATCH),
                events(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                rule(&[""], &["pods"], LIST_WATCH),
                rule(&["apps"], &["statefulsets"], READ),
                rule(&["apps"], &["statefulsets/status"], &["update"]),
                rule(&["apps"], &["statefulsets/finalizers"], &["update"]),
                rule(
                    &[""],
                    &["pods"],
                    &["get", "create", "delete", "update", "patch"],
                ),
                rule(&["apps"], &["controllerrevisions"], ALL_WRITES),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "create", "list", "watch"],
                ),
                rule(&[""], &["persistentvolumeclaims"], &["update", "delete"]),
                rule(&[""], &["pods/finalizers"], &["update"]),
                events(),
                // kinet: status is merge-patched.
                rule(&["apps"], &["statefulsets/status"], &["patch"]),
            ],
        ),
        (
            "certificate-controller",
            vec![
                rule(
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                    &["get", "list", "watch", "delete"],
                ),
                rule(
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                    &["update"],
                ),
                named(
                    &["certificates.k8s.io"],
                    &["signers"],
                    &["approve"],
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    &["certificates.k8s.io"],
                    &["signers"],
                    &["sign"],
                    &[
                        "kubernetes.io/legacy-unknown",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                events(),
                // kinet: approval and certificate are merge-patched.
                rule(
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                    &["patch"],
                ),
            ],
        ),
    ]
}

/// Roles upstream keeps in `kube-system` (`bootstrappolicy/namespace_policy.go`), by the
/// name of the controller bound to each (the role is [`ROLE_PREFIX`] + name).
pub fn namespaced_roles() -> Vec<(&'static str, Vec<PolicyRule>)> {
    vec![
        (
            "token-cleaner",
            vec![
                rule(&[""], &["secrets"], &["delete", "get", "list", "watch"]),
                events(),
            ],
        ),
        (
            // kinet: the load-balancer address pool is this one ConfigMap (as MetalLB's).
            "service-controller",
            vec![named(&[""], &["configmaps"], READ, &["kinet-loadbalancer"])],
        ),
    ]
}

/// `system:kube-scheduler`, abridged to the resources kinet serves.
pub fn scheduler_rules() -> Vec<PolicyRule> {
    vec![
        events(),
        rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        named(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "update"],
            &["kube-scheduler"],
        ),
        rule(&[""], &["nodes"], READ),
        rule(&[""], &["namespaces"], LIST_WATCH),
        rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
        rule(&[""], &["bindings", "pods/binding"], &["create"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["replicationcontrollers", "services"], LIST_WATCH),
        rule(&["apps"], &["replicasets", "statefulsets"], LIST_WATCH),
        rule(&["policy"], &["poddisruptionbudgets"], LIST_WATCH),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            LIST_WATCH,
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        rule(&["storage.k8s.io"], &["storageclasses"], LIST_WATCH),
    ]
}

/// Every control-plane identity: its user name and groups (a service account's, or none).
pub fn identities() -> Vec<(String, Vec<String>)> {
    let accounts = controller_roles()
        .into_iter()
        .chain(namespaced_roles())
        .map(|(name, _)| name);
    let mut users: Vec<(String, Vec<String>)> = accounts
        .map(|name| {
            let groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{NAMESPACE}"),
            ];
            (user(name), groups)
        })
        .collect();
    users.sort();
    users.dedup();
    users.push((SCHEDULER.to_string(), Vec::new()));
    users
}
