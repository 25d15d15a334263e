//! Cross-checks against real encodings: objects built with k8s-pb (prost code generated from
//! Kubernetes' generated.proto) as kubectl's generators build them, wrapped in the envelope,
//! decoded, and compared with what `kubectl create ... --dry-run=client -o json` (v1.32) prints.
//! Zero-valued fields are set explicitly where Go's gogo encoder would write them.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as net;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;

fn envelope(api_version: &str, kind: &str, obj: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

/// Compares as text so that field order counts too.
fn check(body: &[u8], kubectl_json: &str) {
    let got = kinet_protobuf::decode(body).unwrap_or_else(|e| panic!("{}", e.message));
    let want: Value = serde_json::from_str(kubectl_json).unwrap();
    assert_eq!(got.to_string(), want.to_string());
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// ObjectMeta as Go writes it: every non-pointer field, zero or not, and a zero Time as empty bytes.
fn go_meta(name: &str, l: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(Time::default()),
        labels: labels(l),
        ..Default::default()
    }
}

#[test]
fn configmap() {
    // kubectl create configmap cm1 --from-literal=a=b --from-literal=c=d
    let cm = core::ConfigMap {
        metadata: Some(go_meta("cm1", &[])),
        immutable: None,
        data: labels(&[("c", "d"), ("a", "b")]),
        binary_data: BTreeMap::new(),
    };
    check(
        &envelope("v1", "ConfigMap", &cm),
        r#"{
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": {
        "name": "cm1",
        "creationTimestamp": null
    },
    "data": {
        "a": "b",
        "c": "d"
    }
}"#,
    );
}

#[test]
fn secret() {
    // kubectl create secret generic s1 --from-literal=user=admin --from-literal=pw=s3cr3t --type=Opaque
    let secret = core::Secret {
        metadata: Some(go_meta("s1", &[])),
        data: [("user", "admin"), ("pw", "s3cr3t")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    check(
        &envelope("v1", "Secret", &secret),
        r#"{
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {
        "name": "s1",
        "creationTimestamp": null
    },
    "data": {
        "pw": "czNjcjN0",
        "user": "YWRtaW4="
    },
    "type": "Opaque"
}"#,
    );
}

fn port(name: &str, port: i32, target: IntOrString, node_port: i32) -> core::ServicePort {
    core::ServicePort {
        name: Some(name.into()),
        protocol: Some("TCP".into()),
        app_protocol: None,
        port: Some(port),
        target_port: Some(target),
        node_port: Some(node_port),
    }
}

#[test]
fn nodeport_service() {
    // kubectl create service nodeport web --tcp=80:8080 --tcp=443:https --node-port=30080
    let int = IntOrString {
        r#type: Some(0),
        int_val: Some(8080),
        str_val: Some(String::new()),
    };
    let named = IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: Some("https".into()),
    };
    let svc = core::Service {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port("80-8080", 80, int, 30080),
                port("443-https", 443, named, 30080),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: Some(String::new()),
            r#type: Some("NodePort".into()),
            session_affinity: Some(String::new()),
            load_balancer_ip: Some(String::new()),
            external_name: Some(String::new()),
            external_traffic_policy: Some(String::new()),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    check(
        &envelope("v1", "Service", &svc),
        r#"{
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": {
        "name": "web",
        "creationTimestamp": null,
        "labels": {
            "app": "web"
        }
    },
    "spec": {
        "ports": [
            {
                "name": "80-8080",
                "protocol": "TCP",
                "port": 80,
                "targetPort": 8080,
                "nodePort": 30080
            },
            {
                "name": "443-https",
                "protocol": "TCP",
                "port": 443,
                "targetPort": "https",
                "nodePort": 30080
            }
        ],
        "selector": {
            "app": "web"
        },
        "type": "NodePort"
    },
    "status": {
        "loadBalancer": {}
    }
}"#,
    );
}

#[test]
fn service_without_status_gets_go_zero_structs() {
    // kubectl create service clusterip none --clusterip=None, encoded by prost without status:
    // Go's decoder leaves a zero ServiceStatus, which still prints.
    let svc = core::Service {
        metadata: Some(ObjectMeta {
            name: Some("none".into()),
            labels: labels(&[("app", "none")]),
            ..Default::default()
        }),
        spec: Some(core::ServiceSpec {
            selector: labels(&[("app", "none")]),
            cluster_ip: Some("None".into()),
            r#type: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    };
    check(
        &envelope("v1", "Service", &svc),
        r#"{
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": {
        "name": "none",
        "creationTimestamp": null,
        "labels": {
            "app": "none"
        }
    },
    "spec": {
        "selector": {
            "app": "none"
        },
        "clusterIP": "None",
        "type": "ClusterIP"
    },
    "status": {
        "loadBalancer": {}
    }
}"#,
    );
}

fn container(name: &str, ports: Vec<core::ContainerPort>) -> core::Container {
    core::Container {
        name: Some(name.into()),
        image: Some(name.into()),
        working_dir: Some(String::new()),
        ports,
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: Some(String::new()),
        termination_message_policy: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

#[test]
fn deployment_with_zero_replicas() {
    // kubectl create deployment web --image=nginx --image=busybox --image=redis --replicas=0 --port=80
    let container_port = core::ContainerPort {
        name: Some(String::new()),
        host_port: Some(0),
        container_port: Some(80),
        protocol: Some(String::new()),
        host_ip: Some(String::new()),
    };
    let deploy = apps::Deployment {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_meta("", &[("app", "web")])),
                spec: Some(core::PodSpec {
                    containers: vec![
                        container("nginx", vec![container_port]),
                        container("busybox", vec![]),
                        container("redis", vec![]),
                    ],
                    restart_policy: Some(String::new()),
                    dns_policy: Some(String::new()),
                    service_account_name: Some(String::new()),
                    node_name: Some(String::new()),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some(String::new()),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    check(
        &envelope("apps/v1", "Deployment", &deploy),
        r#"{
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {
        "name": "web",
        "creationTimestamp": null,
        "labels": {
            "app": "web"
        }
    },
    "spec": {
        "replicas": 0,
        "selector": {
            "matchLabels": {
                "app": "web"
            }
        },
        "template": {
            "metadata": {
                "creationTimestamp": null,
                "labels": {
                    "app": "web"
                }
            },
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [
                            {
                                "containerPort": 80
                            }
                        ],
                        "resources": {}
                    },
                    {
                        "name": "busybox",
                        "image": "busybox",
                        "resources": {}
                    },
                    {
                        "name": "redis",
                        "image": "redis",
                        "resources": {}
                    }
                ]
            }
        },
        "strategy": {}
    },
    "status": {}
}"#,
    );
}

#[test]
fn namespace() {
    // kubectl create namespace ns1
    let ns = core::Namespace {
        metadata: Some(go_meta("ns1", &[])),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: Some(String::new()),
            conditions: vec![],
        }),
    };
    check(
        &envelope("v1", "Namespace", &ns),
        r#"{
    "kind": "Namespace",
    "apiVersion": "v1",
    "metadata": {
        "name": "ns1",
        "creationTimestamp": null
    },
    "spec": {},
    "status": {}
}"#,
    );
}

#[test]
fn serviceaccount() {
    // kubectl create serviceaccount sa1
    let sa = core::ServiceAccount {
        metadata: Some(go_meta("sa1", &[])),
        ..Default::default()
    };
    check(
        &envelope("v1", "ServiceAccount", &sa),
        r#"{
    "kind": "ServiceAccount",
    "apiVersion": "v1",
    "metadata": {
        "name": "sa1",
        "creationTimestamp": null
    }
}"#,
    );
}

fn backend(service: &str, port: net::ServiceBackendPort) -> net::IngressBackend {
    net::IngressBackend {
        service: Some(net::IngressServiceBackend {
            name: Some(service.into()),
            port: Some(port),
        }),
        resource: None,
    }
}

#[test]
fn ingress() {
    // kubectl create ingress ing --rule=foo.com/bar=svc1:8080,tls=my-cert --class=nginx
    let path = net::HttpIngressPath {
        path: Some("/bar".into()),
        path_type: Some("Exact".into()),
        backend: Some(backend(
            "svc1",
            net::ServiceBackendPort {
                name: Some(String::new()),
                number: Some(8080),
            },
        )),
    };
    let ing = net::Ingress {
        metadata: Some(go_meta("ing", &[])),
        spec: Some(net::IngressSpec {
            ingress_class_name: Some("nginx".into()),
            default_backend: None,
            tls: vec![net::IngressTls {
                hosts: vec!["foo.com".into()],
                secret_name: Some("my-cert".into()),
            }],
            rules: vec![net::IngressRule {
                host: Some("foo.com".into()),
                ingress_rule_value: Some(net::IngressRuleValue {
                    http: Some(net::HttpIngressRuleValue { paths: vec![path] }),
                }),
            }],
        }),
        status: Some(net::IngressStatus {
            load_balancer: Some(Default::default()),
        }),
    };
    check(
        &envelope("networking.k8s.io/v1", "Ingress", &ing),
        r#"{
    "kind": "Ingress",
    "apiVersion": "networking.k8s.io/v1",
    "metadata": {
        "name": "ing",
        "creationTimestamp": null
    },
    "spec": {
        "ingressClassName": "nginx",
        "tls": [
            {
                "hosts": [
                    "foo.com"
                ],
                "secretName": "my-cert"
            }
        ],
        "rules": [
            {
                "host": "foo.com",
                "http": {
                    "paths": [
                        {
                            "path": "/bar",
                            "pathType": "Exact",
                            "backend": {
                                "service": {
                                    "name": "svc1",
                                    "port": {
                                        "number": 8080
                                    }
                                }
                            }
                        }
                    ]
                }
            }
        ]
    },
    "status": {
        "loadBalancer": {}
    }
}"#,
    );
}

#[test]
fn ingress_default_backend_and_named_port() {
    // kubectl create ingress ing2 --default-backend=def:http --rule=/path*=svc:http
    let named = || net::ServiceBackendPort {
        name: Some("http".into()),
        number: Some(0),
    };
    let ing = net::Ingress {
        metadata: Some(go_meta("ing2", &[])),
        spec: Some(net::IngressSpec {
            default_backend: Some(backend("def", named())),
            rules: vec![net::IngressRule {
                host: Some(String::new()),
                ingress_rule_value: Some(net::IngressRuleValue {
                    http: Some(net::HttpIngressRuleValue {
                        paths: vec![net::HttpIngressPath {
                            path: Some("/path".into()),
                            path_type: Some("Prefix".into()),
                            backend: Some(backend("svc", named())),
                        }],
                    }),
                }),
            }],
            ..Default::default()
        }),
        status: None,
    };
    check(
        &envelope("networking.k8s.io/v1", "Ingress", &ing),
        r#"{
    "kind": "Ingress",
    "apiVersion": "networking.k8s.io/v1",
    "metadata": {
        "name": "ing2",
        "creationTimestamp": null
    },
    "spec": {
        "defaultBackend": {
            "service": {
                "name": "def",
                "port": {
                    "name": "http"
                }
            }
        },
        "rules": [
            {
                "http": {
                    "paths": [
                        {
                            "path": "/path",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": "svc",
                                    "port": {
                                        "name": "http"
                                    }
                                }
                            }
                        }
                    ]
                }
            }
        ]
    },
    "status": {
        "loadBalancer": {}
    }
}"#,
    );
}

fn quantity(q: &str) -> k8s_pb::apimachinery::pkg::api::resource::Quantity {
    k8s_pb::apimachinery::pkg::api::resource::Quantity {
        string: Some(q.into()),
    }
}

#[test]
fn resource_quota() {
    // kubectl create quota compute --hard=pods=2,requests.cpu=1
    let quota = core::ResourceQuota {
        metadata: Some(go_meta("compute", &[])),
        spec: Some(core::ResourceQuotaSpec {
            hard: [("pods", "2"), ("requests.cpu", "1")]
                .iter()
                .map(|(k, v)| (k.to_string(), quantity(v)))
                .collect(),
            ..Default::default()
        }),
        status: Some(core::ResourceQuotaStatus::default()),
    };
    check(
        &envelope("v1", "ResourceQuota", &quota),
        r#"{"kind": "ResourceQuota", "apiVersion": "v1",
            "metadata": {"name": "compute", "creationTimestamp": null},
            "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}, "status": {}}"#,
    );
}

#[test]
fn priority_class() {
    // kubectl create priorityclass high --value=1000 --description=hi
    let class = k8s_pb::api::scheduling::v1::PriorityClass {
        metadata: Some(go_meta("high", &[])),
        value: Some(1000),
        global_default: Some(false),
        description: Some("hi".into()),
        preemption_policy: Some("PreemptLowerPriority".into()),
    };
    check(
        &envelope("scheduling.k8s.io/v1", "PriorityClass", &class),
        r#"{"kind": "PriorityClass", "apiVersion": "scheduling.k8s.io/v1",
            "metadata": {"name": "high", "creationTimestamp": null},
            "value": 1000, "description": "hi", "preemptionPolicy": "PreemptLowerPriority"}"#,
    );
}

#[test]
fn pod_disruption_budget() {
    // kubectl create pdb web --selector=app=web --min-available=1
    use k8s_pb::api::policy::v1 as policy;
    let pdb = policy::PodDisruptionBudget {
        metadata: Some(go_meta("web", &[])),
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: Some(IntOrString {
                r#type: Some(0),
                int_val: Some(1),
                str_val: Some(String::new()),
            }),
            selector: Some(LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(policy::PodDisruptionBudgetStatus {
            observed_generation: Some(0),
            disruptions_allowed: Some(0),
            current_healthy: Some(0),
            desired_healthy: Some(0),
            expected_pods: Some(0),
            ..Default::default()
        }),
    };
    check(
        &envelope("policy/v1", "PodDisruptionBudget", &pdb),
        r#"{"kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                       "expectedPods": 0}}"#,
    );
}

#[test]
fn rbac_kinds() {
    use k8s_pb::api::rbac::v1 as rbac;
    // kubectl create rolebinding rb --role=r --serviceaccount=default:x --user=alice
    let binding = rbac::RoleBinding {
        metadata: Some(go_meta("rb", &[])),
        subjects: vec![
            rbac::Subject {
                kind: Some("User".into()),
                api_group: Some("rbac.authorization.k8s.io".into()),
                name: Some("alice".into()),
                namespace: Some(String::new()),
            },
            rbac::Subject {
                kind: Some("ServiceAccount".into()),
                api_group: Some(String::new()),
                name: Some("x".into()),
                namespace: Some("default".into()),
            },
        ],
        role_ref: Some(rbac::RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: Some("Role".into()),
            name: Some("r".into()),
        }),
    };
    check(
        &envelope("rbac.authorization.k8s.io/v1", "RoleBinding", &binding),
        r#"{"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "rb", "creationTimestamp": null},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                         {"kind": "ServiceAccount", "name": "x", "namespace": "default"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}"#,
    );
    // kubectl create clusterrole cr --verb=get --non-resource-url=/logs
    let role = rbac::ClusterRole {
        metadata: Some(go_meta("cr", &[])),
        rules: vec![rbac::PolicyRule {
            verbs: vec!["get".into()],
            non_resource_ur_ls: vec!["/logs".into()],
            ..Default::default()
        }],
        aggregation_rule: None,
    };
    check(
        &envelope("rbac.authorization.k8s.io/v1", "ClusterRole", &role),
        r#"{"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "cr", "creationTimestamp": null},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs"]}]}"#,
    );
    // kubectl create clusterrole agg --aggregation-rule=a=b
    let aggregated = rbac::ClusterRole {
        metadata: Some(go_meta("agg", &[])),
        rules: vec![],
        aggregation_rule: Some(rbac::AggregationRule {
            cluster_role_selectors: vec![LabelSelector {
                match_labels: labels(&[("a", "b")]),
                ..Default::default()
            }],
        }),
    };
    check(
        &envelope("rbac.authorization.k8s.io/v1", "ClusterRole", &aggregated),
        r#"{"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "agg", "creationTimestamp": null}, "rules": null,
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}"#,
    );
}
