//! Each default, as a JSON pointer into the defaulted object and the value kube-apiserver stores.

use kinet_types::registry::lookup;
use serde_json::{json, Value};

use super::default;

fn defaulted(group: &str, plural: &str, body: Value) -> Value {
    let r = lookup(group, "v1", plural).unwrap();
    let mut v = body;
    default(r, &mut v);
    let mut again = v.clone();
    default(r, &mut again);
    assert_eq!(v, again, "defaulting is idempotent");
    v
}

type Case = (
    &'static str,
    &'static str,
    Value,
    Vec<(&'static str, Value)>,
);

fn pod_body() -> Value {
    json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{
        "name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
        "livenessProbe": {"httpGet": {"port": 80}},
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}}
    }, {"name": "d", "image": "busybox:1.36"}],
    "volumes": [{"name": "a"}, {"name": "b", "secret": {"secretName": "s"}}, {"name": "h", "hostPath": {"path": "/x"}}]}})
}

fn template_body() -> Value {
    json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}}})
}

fn cases() -> Vec<Case> {
    vec![
        (
            "",
            "pods",
            pod_body(),
            vec![
                ("/spec/restartPolicy", json!("Always")),
                ("/spec/dnsPolicy", json!("ClusterFirst")),
                ("/spec/terminationGracePeriodSeconds", json!(30)),
                ("/spec/schedulerName", json!("default-scheduler")),
                ("/spec/securityContext", json!({})),
                ("/spec/enableServiceLinks", json!(true)),
                (
                    "/spec/containers/0/terminationMessagePath",
                    json!("/dev/termination-log"),
                ),
                ("/spec/containers/0/terminationMessagePolicy", json!("File")),
                ("/spec/containers/0/imagePullPolicy", json!("Always")),
                ("/spec/containers/1/imagePullPolicy", json!("IfNotPresent")),
                ("/spec/containers/1/resources", json!({})),
                ("/spec/containers/0/ports/0/protocol", json!("TCP")),
                ("/spec/containers/0/livenessProbe/timeoutSeconds", json!(1)),
                ("/spec/containers/0/livenessProbe/periodSeconds", json!(10)),
                (
                    "/spec/containers/0/livenessProbe/successThreshold",
                    json!(1),
                ),
                (
                    "/spec/containers/0/livenessProbe/failureThreshold",
                    json!(3),
                ),
                (
                    "/spec/containers/0/livenessProbe/httpGet/scheme",
                    json!("HTTP"),
                ),
                ("/spec/containers/0/livenessProbe/httpGet/path", json!("/")),
                ("/spec/containers/0/readinessProbe/periodSeconds", json!(5)),
                (
                    "/spec/containers/0/env/0/valueFrom/fieldRef/apiVersion",
                    json!("v1"),
                ),
                (
                    "/spec/containers/0/resources/requests",
                    json!({"memory": "1Mi", "cpu": "1"}),
                ),
                ("/spec/volumes/0/emptyDir", json!({})),
                ("/spec/volumes/1/secret/defaultMode", json!(420)),
                ("/spec/volumes/2/hostPath/type", json!("")),
                // admission plugins
                ("/spec/serviceAccountName", json!("default")),
                ("/spec/serviceAccount", json!("default")),
                (
                    "/spec/tolerations",
                    json!([
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                    ]),
                ),
            ],
        ),
        (
            "",
            "pods",
            json!({"spec": {"hostNetwork": true, "serviceAccountName": "robot", "priorityClassName": "system-node-critical",
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}],
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 53}]}]}}),
            vec![
                ("/spec/containers/0/ports/0/hostPort", json!(53)),
                ("/spec/serviceAccount", json!("robot")),
                (
                    "/spec/tolerations",
                    json!([
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                    ]),
                ),
            ],
        ),
        (
            "",
            "services",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]}}),
            vec![
                ("/spec/type", json!("ClusterIP")),
                ("/spec/sessionAffinity", json!("None")),
                ("/spec/ports/0/protocol", json!("TCP")),
                ("/spec/ports/0/targetPort", json!(80)),
                ("/spec/ports/1/targetPort", json!("https")),
                ("/spec/ports/1/protocol", json!("UDP")),
                ("/spec/internalTrafficPolicy", json!("Cluster")),
                ("/status", json!({"loadBalancer": {}})),
            ],
        ),
        (
            "",
            "services",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": 0}]}}),
            vec![
                (
                    "/spec/sessionAffinityConfig",
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                ),
                ("/spec/externalTrafficPolicy", json!("Cluster")),
                ("/spec/allocateLoadBalancerNodePorts", json!(true)),
                ("/spec/ports/0/targetPort", json!(80)),
            ],
        ),
        (
            "",
            "services",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            vec![
                ("/spec/externalTrafficPolicy", json!("Cluster")),
                ("/spec/internalTrafficPolicy", json!("Cluster")),
            ],
        ),
        (
            "apps",
            "deployments",
            template_body(),
            vec![
                ("/spec/replicas", json!(1)),
                (
                    "/spec/strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
                ("/spec/progressDeadlineSeconds", json!(600)),
                ("/spec/template/spec/restartPolicy", json!("Always")),
                (
                    "/spec/template/spec/containers/0/imagePullPolicy",
                    json!("Always"),
                ),
            ],
        ),
        (
            "apps",
            "replicasets",
            template_body(),
            vec![
                ("/spec/replicas", json!(1)),
                ("/spec/template/spec/dnsPolicy", json!("ClusterFirst")),
            ],
        ),
        (
            "apps",
            "statefulsets",
            template_body(),
            vec![
                ("/spec/replicas", json!(1)),
                ("/spec/podManagementPolicy", json!("OrderedReady")),
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                ),
                (
                    "/spec/persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                ),
            ],
        ),
        (
            "batch",
            "jobs",
            template_body(),
            vec![
                ("/spec/completions", json!(1)),
                ("/spec/parallelism", json!(1)),
                ("/spec/backoffLimit", json!(6)),
                ("/spec/completionMode", json!("NonIndexed")),
                ("/spec/suspend", json!(false)),
                ("/metadata/labels", json!({"a": "b"})),
            ],
        ),
        (
            "batch",
            "cronjobs",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}}),
            vec![
                ("/spec/concurrencyPolicy", json!("Allow")),
                ("/spec/successfulJobsHistoryLimit", json!(3)),
                ("/spec/failedJobsHistoryLimit", json!(1)),
                (
                    "/spec/jobTemplate/spec/template/spec/dnsPolicy",
                    json!("ClusterFirst"),
                ),
            ],
        ),
        (
            "apps",
            "daemonsets",
            template_body(),
            vec![
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
                (
                    "/spec/template/spec/schedulerName",
                    json!("default-scheduler"),
                ),
            ],
        ),
        (
            "",
            "namespaces",
            json!({"metadata": {"name": "dev"}}),
            vec![
                (
                    "/metadata/labels",
                    json!({"kubernetes.io/metadata.name": "dev"}),
                ),
                ("/spec/finalizers", json!(["kubernetes"])),
                ("/status/phase", json!("Active")),
            ],
        ),
        (
            "",
            "secrets",
            json!({"data": {}}),
            vec![("/type", json!("Opaque"))],
        ),
        (
            "",
            "secrets",
            json!({"type": "kubernetes.io/tls", "data": {"a": "eA==", "tls.key": "eA=="},
                   "stringData": {"tls.crt": "crt", "tls.key": "key"}}),
            vec![
                ("/data/tls.crt", json!("Y3J0")),
                ("/data/tls.key", json!("a2V5")),
                ("/data/a", json!("eA==")),
                ("/stringData", Value::Null),
            ],
        ),
        (
            "",
            "endpoints",
            json!({"subsets": [{"ports": [{"port": 80}]}]}),
            vec![("/subsets/0/ports/0/protocol", json!("TCP"))],
        ),
        (
            "",
            "nodes",
            json!({"status": {"capacity": {"cpu": "4"}}}),
            vec![("/status/allocatable", json!({"cpu": "4"}))],
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
            vec![
                ("/spec/policyTypes", json!(["Ingress", "Egress"])),
                ("/spec/egress/0/ports/0/protocol", json!("TCP")),
            ],
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            json!({"spec": {"podSelector": {}}}),
            vec![("/spec/policyTypes", json!(["Ingress"]))],
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"ports": [{"port": 80}]}),
            vec![("/ports/0/protocol", json!("TCP"))],
        ),
    ]
}

#[test]
fn defaults_table() {
    for (group, plural, body, expect) in cases() {
        let out = defaulted(group, plural, body);
        for (pointer, want) in expect {
            // A null expectation means the field is gone.
            let want = Some(&want).filter(|w| !w.is_null());
            assert_eq!(out.pointer(pointer), want, "{plural} {pointer}: {out:#}");
        }
    }
}

#[test]
fn templates_do_not_get_pod_only_defaults() {
    let out = defaulted("apps", "deployments", template_body());
    let spec = &out["spec"]["template"]["spec"];
    for absent in [
        "enableServiceLinks",
        "serviceAccountName",
        "tolerations",
        "priority",
    ] {
        assert!(spec.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn explicit_values_are_kept() {
    let out = defaulted(
        "apps",
        "deployments",
        json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {"restartPolicy": "OnFailure", "containers": []}}}}),
    );
    assert_eq!(out["spec"]["replicas"], 0);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["restartPolicy"],
        "OnFailure"
    );
    let svc = defaulted(
        "",
        "services",
        json!({"spec": {"sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {}}}}),
    );
    assert!(svc["spec"].get("sessionAffinityConfig").is_none());
}

#[test]
fn default_toleration_seconds_is_the_cluster_setting() {
    let r = lookup("", "v1", "pods").unwrap();
    let short = super::Settings {
        default_toleration_seconds: 10,
    };
    let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "x"}],
        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}});
    super::default_with(r, &mut pod, &short);
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([
            {"operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        ])
    );
    // A keyless NoExecute toleration already covers both keys.
    let mut tolerant = json!({"spec": {"containers": [{"name": "c", "image": "x"}],
        "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}});
    super::default_with(r, &mut tolerant, &short);
    assert_eq!(
        tolerant["spec"]["tolerations"],
        json!([{"operator": "Exists", "effect": "NoExecute"}])
    );
}
