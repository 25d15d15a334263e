//! Exact cells for every other kind, from realistic objects.

use serde_json::{json, Value};

use super::{now, res};
use crate::cells;

fn meta(name: &str, created: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": created})
}

#[test]
fn cells_per_kind() {
    let t5m = "2025-01-10T11:55:00Z";
    let t2d = "2025-01-08T09:00:00Z";
    let cases: Vec<(&str, &str, Value, Value)> = vec![
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            json!({"metadata": meta("ingress-nginx", t5m),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ingress-nginx"},
                "subjects": [{"kind": "ServiceAccount", "name": "ingress-nginx", "namespace": "ingress-nginx"},
                             {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                             {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
                             {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}]}),
            json!([
                "ingress-nginx",
                "Role/ingress-nginx",
                "5m",
                "alice, bob",
                "devs",
                "ingress-nginx:ingress-nginx"
            ]),
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            json!({"metadata": meta("cluster-admin", t2d),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}]}),
            json!([
                "cluster-admin",
                "ClusterRole/cluster-admin",
                "2d3h",
                "",
                "system:masters",
                ""
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("web", t5m), "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34",
            "clusterIPs": ["10.96.12.34"], "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}}),
            json!([
                "web",
                "ClusterIP",
                "10.96.12.34",
                "<none>",
                "80/TCP,443/TCP",
                "5m",
                "app=web"
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("web-np", t5m), "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.50"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}),
            json!([
                "web-np",
                "NodePort",
                "10.96.0.50",
                "<none>",
                "80:30080/TCP,53/UDP",
                "5m",
                "<none>"
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("lb", t5m), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.60"],
            "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}}),
            json!([
                "lb",
                "LoadBalancer",
                "10.96.0.60",
                "<pending>",
                "80:31000/TCP",
                "5m",
                "<none>"
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("lb", t5m), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.60"],
            "externalIPs": ["192.0.2.9"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}, {"hostname": "lb.example.com"}]}}}),
            json!([
                "lb",
                "LoadBalancer",
                "10.96.0.60",
                "172.18.255.200,lb.example.com,192.0.2.9",
                "80:31000/TCP",
                "5m",
                "<none>"
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("db", t5m), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            json!([
                "db",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "5m",
                "<none>"
            ]),
        ),
        (
            "",
            "services",
            json!({"metadata": meta("headless", t5m), "spec": {"type": "ClusterIP", "clusterIP": "None",
            "clusterIPs": ["None"], "selector": {"app": "db"}, "ports": [{"port": 5432, "protocol": "TCP"}]}}),
            json!([
                "headless",
                "ClusterIP",
                "None",
                "<none>",
                "5432/TCP",
                "5m",
                "app=db"
            ]),
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta("web", t5m), "subsets": [
            {"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.7"}], "ports": [{"port": 8080, "protocol": "TCP"}]},
            {"addresses": [{"ip": "10.244.3.2"}, {"ip": "10.244.3.9"}], "ports": [{"port": 8080, "protocol": "TCP"}]}]}),
            json!([
                "web",
                "10.244.1.5:8080,10.244.2.7:8080,10.244.3.2:8080 + 1 more...",
                "5m"
            ]),
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta("none", t5m)}),
            json!(["none", "<none>", "5m"]),
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta("headless", t5m), "subsets": [{"addresses": [{"ip": "10.244.1.5"}]}]}),
            json!(["headless", "10.244.1.5", "5m"]),
        ),
        (
            "",
            "nodes",
            json!({"metadata": {"name": "kinet-control-plane", "creationTimestamp": t2d,
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "kinet-control-plane"}},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "kinet-control-plane"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.8.0-45-generic", "containerRuntimeVersion": "containerd://1.7.18"}}}),
            json!([
                "kinet-control-plane",
                "Ready",
                "control-plane",
                "2d3h",
                "v1.32.0",
                "172.18.0.2",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.8.0-45-generic",
                "containerd://1.7.18"
            ]),
        ),
        (
            "",
            "nodes",
            json!({"metadata": {"name": "w1", "creationTimestamp": t2d, "labels": {"kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}], "nodeInfo": {"kubeletVersion": "v1.32.0"}}}),
            json!([
                "w1",
                "NotReady,SchedulingDisabled",
                "worker",
                "2d3h",
                "v1.32.0",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        ),
        (
            "",
            "nodes",
            json!({"metadata": {"name": "w2", "creationTimestamp": t2d}}),
            json!([
                "w2",
                "Unknown",
                "<none>",
                "2d3h",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        ),
        (
            "",
            "namespaces",
            json!({"metadata": {"name": "kube-system", "creationTimestamp": t2d}, "status": {"phase": "Active"}}),
            json!(["kube-system", "Active", "2d3h"]),
        ),
        (
            "",
            "configmaps",
            json!({"metadata": meta("cfg", t5m), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
            json!(["cfg", 3, "5m"]),
        ),
        (
            "",
            "secrets",
            json!({"metadata": meta("tls", t5m), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
            json!(["tls", "kubernetes.io/tls", 2, "5m"]),
        ),
        (
            "",
            "serviceaccounts",
            json!({"metadata": meta("default", t2d)}),
            json!(["default", 0, "2d3h"]),
        ),
        (
            "",
            "events",
            json!({"metadata": meta("web-1.17f", t5m), "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "message": "Successfully assigned default/web-1 to kinet-worker\n", "reportingComponent": "default-scheduler",
            "eventTime": "2025-01-10T11:58:00.000000Z"}),
            json!([
                "2m",
                "Normal",
                "Scheduled",
                "pod/web-1",
                "",
                "default-scheduler",
                "Successfully assigned default/web-1 to kinet-worker",
                "2m",
                1,
                "web-1.17f"
            ]),
        ),
        (
            "",
            "events",
            json!({"metadata": meta("web.1", t5m), "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web-2", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "kinet-worker"}, "message": "Back-off restarting failed container",
            "firstTimestamp": "2025-01-10T11:50:00Z", "lastTimestamp": "2025-01-10T11:59:00Z", "count": 7}),
            json!([
                "60s",
                "Warning",
                "BackOff",
                "pod/web-2",
                "spec.containers{app}",
                "kubelet, kinet-worker",
                "Back-off restarting failed container",
                "10m",
                7,
                "web.1"
            ]),
        ),
        (
            "apps",
            "deployments",
            json!({"metadata": meta("web", t5m), "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            json!([
                "web",
                "2/3",
                3,
                2,
                "5m",
                "nginx,log",
                "nginx:1.27,busybox",
                "app=web"
            ]),
        ),
        (
            "apps",
            "replicasets",
            json!({"metadata": meta("web-5d8f", t5m), "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}}),
            json!([
                "web-5d8f",
                3,
                3,
                1,
                "5m",
                "nginx",
                "nginx:1.27",
                "app=web,pod-template-hash=5d8f"
            ]),
        ),
        (
            "apps",
            "daemonsets",
            json!({"metadata": meta("kinet-proxy", t2d), "spec": {
                "selector": {"matchLabels": {"k8s-app": "kinet-proxy"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "proxy", "image": "kinet:dev"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}}),
            json!([
                "kinet-proxy",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "2d3h",
                "proxy",
                "kinet:dev",
                "k8s-app=kinet-proxy"
            ]),
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": meta("web-abcde", t5m), "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]}]}),
            json!(["web-abcde", "IPv4", "8080", "10.244.1.5,10.244.2.7", "5m"]),
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": meta("empty", t5m), "addressType": "IPv4", "endpoints": []}),
            json!(["empty", "IPv4", "<unset>", "<unset>", "5m"]),
        ),
        (
            "coordination.k8s.io",
            "leases",
            json!({"metadata": meta("kinet-worker", t2d), "spec": {"holderIdentity": "kinet-worker"}}),
            json!(["kinet-worker", "kinet-worker", "2d3h"]),
        ),
        (
            "networking.k8s.io",
            "ingresses",
            json!({"metadata": meta("web", t5m), "spec": {"ingressClassName": "nginx",
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.10"}]}}}),
            json!([
                "web",
                "nginx",
                "a.example.com,b.example.com",
                "172.18.0.10",
                "80, 443",
                "5m"
            ]),
        ),
        (
            "networking.k8s.io",
            "ingresses",
            json!({"metadata": meta("any", t5m), "spec": {"rules": [{"http": {}}]}}),
            json!(["any", "<none>", "*", "", "80", "5m"]),
        ),
        (
            "networking.k8s.io",
            "ingressclasses",
            json!({"metadata": {"name": "nginx", "creationTimestamp": t2d},
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/external-lb",
                "2d3h"
            ]),
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            json!({"metadata": meta("db", t5m), "spec": {"podSelector": {"matchLabels": {"app": "db"}}}}),
            json!(["db", "app=db", "5m"]),
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            json!({"metadata": meta("deny-all", t5m), "spec": {"podSelector": {}}}),
            json!(["deny-all", "<none>", "5m"]),
        ),
        (
            "apps",
            "statefulsets",
            json!({"metadata": meta("web", t2d), "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2}}),
            json!(["web", "2/3", "2d3h", "nginx", "nginx"]),
        ),
        (
            "batch",
            "jobs",
            json!({"metadata": meta("pi", t5m), "spec": {"completions": 3, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "busybox"}]}}},
            "status": {"succeeded": 3, "startTime": "2025-01-10T11:55:10Z", "completionTime": "2025-01-10T11:55:40Z",
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}}),
            json!([
                "pi",
                "Complete",
                "3/3",
                "30s",
                "5m",
                "pi",
                "busybox",
                "batch.kubernetes.io/controller-uid=u1"
            ]),
        ),
        (
            "batch",
            "jobs",
            json!({"metadata": meta("work", t5m), "spec": {"parallelism": 2, "template": {"spec": {"containers": []}}},
            "status": {"succeeded": 0, "startTime": "2025-01-10T11:58:00Z"}}),
            json!(["work", "Running", "0/1 of 2", "2m", "5m", "", "", "<none>"]),
        ),
        (
            "batch",
            "cronjobs",
            json!({"metadata": meta("hello", t2d), "spec": {"schedule": "*/1 * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2025-01-10T11:59:00Z"}}),
            json!([
                "hello",
                "*/1 * * * *",
                "<none>",
                "False",
                1,
                "60s",
                "2d3h",
                "hello",
                "busybox",
                "<none>"
            ]),
        ),
    ];
    for (group, plural, obj, want) in cases {
        let got = cells(res(group, plural), &obj, now());
        assert_eq!(
            Value::from(got.clone()),
            want,
            "{plural} {}",
            obj["metadata"]["name"]
        );
        assert_eq!(
            got.len(),
            crate::columns(res(group, plural)).len(),
            "{plural}: a cell per column"
        );
    }
}

#[test]
fn table_shape() {
    let pods = res("", "pods");
    let p = json!({"metadata": {"name": "a", "namespace": "ns1", "uid": "u1", "creationTimestamp": "2025-01-10T11:59:00Z"},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}});
    let t = crate::table(pods, &[&p], "42", now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
    );
    assert_eq!(t["rows"][0]["cells"][0], "a");
    assert_eq!(crate::table(pods, &[], "7", now())["rows"], json!([]));
}
