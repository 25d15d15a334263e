//! Validation messages as kube-apiserver renders them (`field: body`).

use kinet_types::registry::lookup;
use kinet_types::{ApiError, Resource};
use serde_json::{json, Value};

use super::validate;
use crate::default;

fn res(group: &str, plural: &str) -> &'static Resource {
    lookup(group, "v1", plural).unwrap()
}

/// Defaults then validates, as the API server does; returns `field: body` lines.
fn errors(group: &str, plural: &str, body: Value, old: Option<Value>) -> Vec<String> {
    let r = res(group, plural);
    let mut obj = body;
    default(r, &mut obj);
    let old = old.map(|mut o| {
        default(r, &mut o);
        o
    });
    validate(r, &obj, old.as_ref())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn pod(spec: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

fn svc(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn deploy(selector: Value, labels: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": selector,
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn create_table() {
    let c = json!([{"name": "c", "image": "nginx"}]);
    let cases: Vec<(&str, &str, Value, Vec<String>)> = vec![
        ("", "pods", pod(json!({"containers": c})), vec![]),
        ("", "pods", json!({"metadata": {"namespace": "default"}, "spec": {"containers": c}}),
            vec!["metadata.name: Required value: name or generateName is required".into()]),
        ("", "pods", json!({"metadata": {"name": "My_Pod", "namespace": "default"}, "spec": {"containers": c}}),
            vec![format!("metadata.name: Invalid value: \"My_Pod\": {SUBDOMAIN}")]),
        ("", "pods", json!({"metadata": {"name": "p"}, "spec": {"containers": c}}),
            vec!["metadata.namespace: Required value".into()]),
        ("", "pods", json!({"metadata": {"name": "p", "namespace": "default", "labels": {"a b": "x y"}}, "spec": {"containers": c}}),
            vec![
                "metadata.labels: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into(),
                "metadata.labels[a b]: Invalid value: \"x y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into(),
            ]),
        ("", "pods", pod(json!({"containers": []})), vec!["spec.containers: Required value".into()]),
        ("", "pods", pod(json!({"containers": [{"name": "Web_1"}, {"name": "Web_1", "image": "x"}]})), vec![
            format!("spec.containers[0].name: Invalid value: \"Web_1\": {LABEL}"),
            "spec.containers[0].image: Required value".into(),
            format!("spec.containers[1].name: Invalid value: \"Web_1\": {LABEL}"),
            "spec.containers[1].name: Duplicate value: \"Web_1\"".into(),
        ]),
        ("", "pods", pod(json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000, "protocol": "ICMP"}]}]})), vec![
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into(),
        ]),
        ("", "pods", pod(json!({"containers": c, "restartPolicy": "Sometimes", "dnsPolicy": "Bogus"})), vec![
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".into(),
            "spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"".into(),
        ]),
        ("", "pods", pod(json!({"containers": c, "dnsPolicy": "None"})),
            vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None".into()]),
        ("", "pods", pod(json!({"containers": c, "dnsPolicy": "None", "dnsConfig": {"searches": ["a"]}})),
            vec!["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None".into()]),
        ("", "pods", pod(json!({"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]})),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\"".into()]),
        ("", "services", svc("web", json!({"ports": [{"port": 80}], "selector": {"app": "web"}})), vec![]),
        ("", "services", svc("Web_Svc", json!({"ports": [{"port": 80}]})),
            vec![format!("metadata.name: Invalid value: \"Web_Svc\": {DNS1035}")]),
        ("", "services", svc("1web", json!({"ports": [{"port": 80}]})),
            vec![format!("metadata.name: Invalid value: \"1web\": {DNS1035}")]),
        // targetPort defaults to port, so kube-apiserver reports both.
        ("", "services", svc("web", json!({"ports": [{"port": 70000}]})), vec![
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
        ]),
        ("", "services", svc("web", json!({})), vec!["spec.ports: Required value".into()]),
        ("", "services", svc("web", json!({"clusterIP": "None"})), vec![]),
        ("", "services", svc("web", json!({"ports": [{"port": 80}, {"port": 81}]})), vec![
            "spec.ports[0].name: Required value".into(),
            "spec.ports[1].name: Required value".into(),
        ]),
        ("", "services", svc("web", json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 80, "targetPort": "http_x"}]})), vec![
            "spec.ports[1].name: Duplicate value: \"a\"".into(),
            "spec.ports[1].targetPort: Invalid value: \"http_x\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
            "spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}".into(),
        ]),
        ("", "services", svc("web", json!({"type": "Magic", "sessionAffinity": "Sticky", "ports": [{"port": 80, "protocol": "HTTP"}]})), vec![
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into(),
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"".into(),
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".into(),
        ]),
        ("", "services", svc("web", json!({"type": "ExternalName"})), vec!["spec.externalName: Required value".into()]),
        ("", "services", svc("web", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".into()]),
        ("", "services", svc("web", json!({"ports": [{"port": 80, "nodePort": 30080}]})),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'".into()]),
        ("apps", "deployments", deploy(json!({"matchLabels": {"app": "x"}}), json!({"app": "x"})), vec![]),
        ("apps", "deployments", deploy(json!({"matchLabels": {"app": "y"}}), json!({"app": "x"})),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`".into()]),
        ("apps", "deployments", deploy(Value::Null, json!({"app": "x"})), vec!["spec.selector: Required value".into()]),
        ("apps", "deployments", deploy(json!({}), json!({"app": "x"})),
            vec!["spec.selector: Invalid value: map[string]string{}: empty selector is invalid for deployment".into()]),
        ("apps", "replicasets", deploy(json!({"matchExpressions": [{"key": "app", "operator": "In"}]}), json!({"app": "x"})), vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`".into(),
        ]),
        ("apps", "daemonsets", deploy(json!({"matchLabels": {"app": "x"}}), json!({"app": "x"})), vec![]),
        ("", "namespaces", json!({"metadata": {"name": "Dev_1"}}),
            vec![
                format!("metadata.name: Invalid value: \"Dev_1\": {LABEL}"),
                // The defaulted label value "Dev_1" is a valid label value.
            ]),
        ("", "namespaces", json!({"metadata": {"name": "dev", "namespace": "x"}}),
            vec!["metadata.namespace: Forbidden: not allowed on this type".into()]),
        ("", "configmaps", json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok.conf": "", "bad key": ""}}), vec![
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into(),
        ]),
        ("", "secrets", json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
            vec!["data[tls.key]: Required value".into()]),
        ("", "endpoints", json!({"metadata": {"name": "e", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "10.0.0.300"}, {"ip": "127.0.0.1"}], "ports": [{"port": 0}]}]}), vec![
            "subsets[0].addresses[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
            "subsets[0].addresses[1].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)".into(),
            "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
        ]),
        ("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv5", "endpoints": [{"addresses": []}]}), vec![
            "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"".into(),
            "endpoints[0].addresses: Required value: must contain at least 1 address".into(),
        ]),
        ("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}], "ports": [{"port": 80}]}),
            vec!["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address".into()]),
        ("networking.k8s.io", "ingresses", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {}}),
            vec!["spec: Invalid value: null: either `defaultBackend` or `rules` must be specified".into()]),
        ("networking.k8s.io", "ingresses", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "x", "pathType": "Exact", "backend": {}},
            {"path": "/", "backend": {"service": {"name": "web"}}},
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}), vec![
            "spec.rules[0].http.paths[1].path: Invalid value: \"x\": must be an absolute path".into(),
            "spec.rules[0].http.paths[1].backend: Invalid value: \"\": resource or service backend is required".into(),
            "spec.rules[0].http.paths[2].pathType: Required value: pathType must be specified".into(),
            "spec.rules[0].http.paths[3].backend: Required value: port name or number is required".into(),
        ]),
        ("networking.k8s.io", "networkpolicies", json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"podSelector": {},
            "ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}, "podSelector": {}}], "ports": [{"port": 70000}]}], "policyTypes": ["Sideways"]}}), vec![
            "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            "spec.ingress[0].from[0]: Required value: must specify a peer".into(),
            "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`".into(),
            "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer".into(),
            "spec.policyTypes[0]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"".into(),
        ]),
        ("coordination.k8s.io", "leases", json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}}),
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0".into()]),
        ("", "nodes", json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.244.1.0/24"], "taints": [{"key": "k", "effect": "Sometimes"}]}}),
            vec!["spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"".into()]),
        ("networking.k8s.io", "ingressclasses", json!({"metadata": {"name": "nginx"}, "spec": {"controller": "nginx"}}),
            vec!["spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")".into()]),
        ("", "events", json!({"metadata": {"name": "e.1", "namespace": "a"}, "involvedObject": {"namespace": "b"}}),
            vec!["involvedObject.namespace: Invalid value: \"b\": does not match event.namespace".into()]),
    ];
    for (group, plural, body, want) in cases {
        assert_eq!(
            errors(group, plural, body.clone(), None),
            want,
            "{plural} {body}"
        );
    }
}

#[test]
fn update_table() {
    let d = |sel: &str| deploy(json!({"matchLabels": {"app": sel}}), json!({"app": sel}));
    assert_eq!(
        errors("apps", "deployments", d("y"), Some(d("x"))),
        vec!["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"y\"}}: field is immutable"]
    );
    assert!(errors("apps", "deployments", d("x"), Some(d("x"))).is_empty());

    let s = |ip: &str| {
        svc(
            "web",
            json!({"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80}]}),
        )
    };
    assert_eq!(
        errors("", "services", s("10.96.0.20"), Some(s("10.96.0.10"))),
        vec![
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.20\"}: may not change once set"
        ]
    );
    assert!(errors("", "services", s("10.96.0.10"), Some(s("10.96.0.10"))).is_empty());

    let p = |image: &str, policy: &str| {
        pod(json!({"containers": [{"name": "c", "image": image}], "restartPolicy": policy}))
    };
    assert!(errors(
        "",
        "pods",
        p("nginx:2", "Always"),
        Some(p("nginx:1", "Always"))
    )
    .is_empty());
    let errs = errors(
        "",
        "pods",
        p("nginx:1", "Never"),
        Some(p("nginx:1", "Always")),
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{errs:?}");

    let mut renamed = d("x");
    renamed["metadata"]["name"] = json!("other");
    assert_eq!(
        errors("apps", "deployments", renamed, Some(d("x"))),
        vec!["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

#[test]
fn invalid_status_message() {
    let r = res("", "services");
    let mut obj = svc(
        "web",
        json!({"ports": [{"port": 70000, "targetPort": 8080}]}),
    );
    default(r, &mut obj);
    let e = ApiError::invalid(r, "web", &validate(r, &obj, None));
    assert_eq!(
        e.message,
        "Service \"web\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
}

#[test]
fn ephemeral_containers_as_kube_apiserver_judges_them() {
    let spec = |ephemeral: Value| {
        pod(json!({"containers": [{"name": "web", "image": "nginx"}],
                   "ephemeralContainers": ephemeral}))
    };
    let debugger = json!({"name": "debugger", "image": "busybox", "targetContainerName": "web",
                          "stdin": true, "tty": true});
    let old = spec(json!([]));
    let added = spec(json!([debugger.clone()]));
    let check = |new: &Value, old: &Value| -> Vec<String> {
        let r = res("", "pods");
        let (mut new, mut old) = (new.clone(), old.clone());
        default(r, &mut new);
        default(r, &mut old);
        super::validate_ephemeral_containers_update(r, &new, &old)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert!(check(&added, &old).is_empty(), "{:?}", check(&added, &old));
    assert_eq!(
        check(&old, &added),
        [
            r#"spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not be removed
"#
        ]
    );
    let mut changed = debugger.clone();
    changed["image"] = json!("alpine");
    assert_eq!(
        check(&spec(json!([changed])), &added),
        [
            r#"spec.ephemeralContainers[debugger]: Forbidden: existing ephemeral containers "debugger" may not be changed
"#
        ]
    );
    let bad = json!({"name": "web", "image": "busybox", "targetContainerName": "nope",
                     "ports": [{"containerPort": 80}], "readinessProbe": {"tcpSocket": {"port": 80}}});
    assert_eq!(
        check(&spec(json!([bad])), &old),
        [
            r#"spec.ephemeralContainers[0].name: Duplicate value: "web""#,
            r#"spec.ephemeralContainers[0].targetContainerName: Not found: "nope""#,
            "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
            "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
        ]
    );
    // Through the pod itself, ephemeral containers cannot be added.
    assert_eq!(
        errors("", "pods", added, Some(old)).len(),
        1,
        "a pod update may not add ephemeral containers"
    );
}

#[test]
fn stateful_sets_jobs_and_cron_jobs() {
    let sts = |policy: &str| {
        let mut s = deploy(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        s["spec"]["serviceName"] = json!("nginx");
        s["spec"]["podManagementPolicy"] = json!(policy);
        s
    };
    assert!(errors("apps", "statefulsets", sts("Parallel"), None).is_empty());
    assert_eq!(
        errors("apps", "statefulsets", sts("Random"), None),
        vec!["spec.podManagementPolicy: Unsupported value: \"Random\": supported values: \"OrderedReady\", \"Parallel\""]
    );
    let mut renamed = sts("Parallel");
    renamed["spec"]["serviceName"] = json!("other");
    assert_eq!(
        errors("apps", "statefulsets", renamed, Some(sts("Parallel"))),
        vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
    );
    let mut scaled = sts("Parallel");
    scaled["spec"]["replicas"] = json!(5);
    assert!(errors("apps", "statefulsets", scaled, Some(sts("Parallel"))).is_empty());

    let job = |restart: &str| {
        json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u"}},
                "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}}})
    };
    assert!(errors("batch", "jobs", job("Never"), None).is_empty());
    assert_eq!(
        errors("batch", "jobs", job("Always"), None),
        vec!["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
    );
    let mut negative = job("OnFailure");
    negative["spec"]["backoffLimit"] = json!(-1);
    assert_eq!(
        errors("batch", "jobs", negative, None),
        vec!["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"]
    );

    let cron = |schedule: &str| {
        json!({"metadata": {"name": "tick", "namespace": "default"}, "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    };
    assert!(errors("batch", "cronjobs", cron("*/1 * * * *"), None).is_empty());
    let errs = errors("batch", "cronjobs", cron("* * *"), None);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.schedule: Invalid value: \"* * *\""),
        "{errs:?}"
    );
}
