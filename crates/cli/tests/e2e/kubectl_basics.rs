//! Issue 2's acceptance, as a new user tries it: discovery, apply/get/label/annotate/scale/
//! expose/run/edit/describe/delete, and watch, all through the real kubectl.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{show, stdout, Cluster};

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
";

fn write(cluster: &Cluster, name: &str, text: &str) -> String {
    let path = cluster.home.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn discovery_and_defaults() {
    let c = Cluster::up(1);
    let ns = c.kubectl_ok(&["get", "ns", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(
        ns,
        "default kinet-ingress kube-node-lease kube-public kube-system"
    );
    let version = c.kubectl_ok(&["version"]);
    assert!(version.contains("Server Version: v1.32"), "{version}");
    let resources = c.kubectl_ok(&["api-resources", "--no-headers"]);
    for kind in [
        "Namespace",
        "Node",
        "Pod",
        "Service",
        "Endpoints",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "EndpointSlice",
        "Lease",
        "Ingress",
        "IngressClass",
        "NetworkPolicy",
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().last() == Some(kind)),
            "{kind} missing:\n{resources}"
        );
    }
    let svc = c.kubectl_ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(svc, "10.96.0.1");
}

#[test]
fn apply_get_and_change_with_kubectl() {
    apply_get_and_change_with_kubectl_on(&Cluster::up(1));
}

/// The case on any cluster with at least 1 node(s); `etcd.rs` runs it on an etcd-backed one.
pub(crate) fn apply_get_and_change_with_kubectl_on(c: &Cluster) {
    let file = write(c, "web.yaml", WEB);
    let first = c.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(first, "deployment.apps/web created\nservice/web created\n");
    let again = c.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(
        again,
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );
    let changed = write(
        c,
        "web2.yaml",
        &WEB.replace("replicas: 3", "replicas: 4")
            .replace("nginx:1.27", "nginx:1.28"),
    );
    let third = c.kubectl_ok(&["apply", "-f", &changed]);
    assert_eq!(
        third,
        "deployment.apps/web configured\nservice/web unchanged\n"
    );

    let wide = c.kubectl_ok(&["get", "deploy,svc", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("nginx:1.28") && wide.contains("SELECTOR"),
        "{wide}"
    );
    let yaml = c.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("replicas: 4") && yaml.contains("revisionHistoryLimit: 10"),
        "{yaml}"
    );
    let names = c.kubectl_ok(&[
        "get",
        "deploy,svc",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(names, "web web");

    c.kubectl_ok(&["label", "svc", "web", "tier=front"]);
    c.kubectl_ok(&["annotate", "service", "web", "k=v"]);
    let scaled = c.kubectl_ok(&["scale", "deployment/web", "--replicas=2"]);
    assert_eq!(scaled, "deployment.apps/web scaled\n");
    assert_eq!(
        c.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    c.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
        "--type",
        "NodePort",
        "--name",
        "web-np",
    ]);
    let np = c.kubectl_ok(&[
        "get",
        "svc",
        "web-np",
        "-o",
        "jsonpath={.spec.type} {.spec.ports[0].nodePort} {.spec.clusterIP}",
    ]);
    let parts: Vec<&str> = np.split(' ').collect();
    assert_eq!(parts[0], "NodePort");
    assert!(
        (30000..=32767).contains(&parts[1].parse::<u16>().unwrap()),
        "{np}"
    );
    assert!(parts[2].starts_with("10."), "{np}");

    assert_eq!(
        c.kubectl_ok(&["run", "solo", "--image=nginx"]),
        "pod/solo created\n"
    );
    let pods = c.kubectl_ok(&["get", "pods", "solo"]);
    // Pods run at once on kinet's nodes: the status is one of the start-up ones.
    assert!(
        pods.contains("solo")
            && ["Pending", "ContainerCreating", "Running"]
                .iter()
                .any(|s| pods.contains(s)),
        "{pods}"
    );

    // kubectl edit with a scripted editor.
    let edit = c
        .kubectl_cmd(&["edit", "service", "web"])
        .env("EDITOR", "sed -i s/k:\\ v/k:\\ edited/")
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", show(&edit));
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.k}"
        ]),
        "edited"
    );

    let described = c.kubectl_ok(&["describe", "svc", "web"]);
    for want in [
        "Name:",
        "web",
        "Selector:",
        "app=web",
        "tier=front",
        "k: edited",
        "Port:",
    ] {
        assert!(described.contains(want), "{want} missing in\n{described}");
    }
    assert_eq!(
        c.kubectl_ok(&["delete", "pod", "solo"]),
        "pod \"solo\" deleted\n"
    );
    assert_eq!(
        c.kubectl_ok(&["delete", "svc", "web-np"]),
        "service \"web-np\" deleted\n"
    );
    let left = c.kubectl(&["get", "svc", "web-np"]);
    assert!(!left.status.success());
}

#[test]
fn watch_shows_changes_from_another_client() {
    watch_shows_changes_from_another_client_on(&Cluster::up(1));
}

/// The case on any cluster with at least 1 node(s); `etcd.rs` runs it on an etcd-backed one.
pub(crate) fn watch_shows_changes_from_another_client_on(c: &Cluster) {
    let file = write(c, "web.yaml", WEB);
    c.kubectl_ok(&["apply", "-f", &file]);
    let mut watch = c
        .kubectl_cmd(&["get", "svc", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let header = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("watch header");
    assert!(header.starts_with("NAME"), "{header}");
    // Wait for the initial rows, then change the Service from another client.
    let mut rows = Vec::new();
    while rows.len() < 2 {
        rows.push(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("initial rows"),
        );
    }
    c.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let update = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the change");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        update.starts_with("web") && update.contains("NodePort") && update.contains(":3"),
        "{update}"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let c = Cluster::up(1);
    let cases = [
        ("caps.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", "a lowercase RFC 1123 subdomain"),
        ("port.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: badport}\nspec:\n  ports: [{port: 70000}]\n", "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
        ("unknown.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: unk}\nspec:\n  foo: bar\n  ports: [{port: 80}]\n", "strict decoding error: unknown field \"spec.foo\""),
        ("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n  data: [\n", "error converting YAML to JSON"),
        ("mismatch.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mismatch}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: nginx}]}\n", "`selector` does not match template `labels`"),
    ];
    for (file, text, want) in cases {
        let path = write(&c, file, text);
        let out = c.kubectl(&["apply", "-f", &path]);
        assert!(!out.status.success(), "{file} was accepted\n{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{file}: want {want:?}\n{}", show(&out));
    }
    let stored = stdout(&c.kubectl(&["get", "cm,svc,deploy", "-o", "name"]));
    assert_eq!(stored, "service/kubernetes\n");
}
