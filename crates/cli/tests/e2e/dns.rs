//! Issue 6: cluster DNS as pods in kube-system, asked from inside pods with the real
//! nslookup and dig, through the pods' own resolv.conf and the kube-dns Service.

use std::time::{Duration, Instant};

use crate::harness::Cluster;
use crate::pods::{apply, exec, json, wait_dns, wait_ready, AGNHOST};

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: c
        image: registry.k8s.io/e2e-test-images/agnhost:2.39
        args: ["netexec", "--http-port=8080"]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: docs}
spec:
  type: ExternalName
  externalName: docs.example.org
---
apiVersion: v1
kind: Pod
metadata: {name: custom}
spec:
  dnsPolicy: "None"
  dnsConfig:
    nameservers: ["10.96.0.10"]
    searches: ["a.example", "b.example"]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
"#;

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

/// `dig +short` from inside `pod`, polled until `ok` holds (answers follow the API within
/// milliseconds, but the Endpoints controller must first see the pods).
fn dig_until(c: &Cluster, pod: &str, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut cmd = vec!["dig", "+short", "+time=2", "+tries=1"];
    cmd.extend(args);
    loop {
        let out = exec(c, pod, &cmd);
        if ok(&out) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cluster_dns_answers_the_kubernetes_records() {
    cluster_dns_answers_the_kubernetes_records_on(&Cluster::up(2));
}

/// The case on any cluster with at least 2 node(s); `etcd.rs` runs it on an etcd-backed one.
pub(crate) fn cluster_dns_answers_the_kubernetes_records_on(c: &Cluster) {
    wait_dns(c);
    let system = json(
        c,
        &["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"],
    );
    assert_eq!(system["items"].as_array().unwrap().len(), 2);

    c.kubectl_ok(&["run", "client", "--image", AGNHOST, "--", "pause"]);
    apply(c, OBJECTS);
    wait_ready(c, "run=client", 1);
    let db = wait_ready(c, "app=db", 3);

    let out = exec(c, "client", &["nslookup", "kubernetes"]);
    assert!(
        out.contains("Name:\tkubernetes.default.svc.cluster.local")
            && out.contains("Address: 10.96.0.1"),
        "{out}"
    );
    let out = exec(
        c,
        "client",
        &["nslookup", "kube-dns.kube-system.svc.cluster.local"],
    );
    assert!(out.contains("Address: 10.96.0.10"), "{out}");

    // A Service is found by its short name right after `kubectl expose`, and curl reaches it.
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "db",
        "--name",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let ip = json(c, &["get", "svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = exec(c, "client", &["nslookup", "web"]);
    assert!(out.contains(&format!("Address: {ip}")), "{out}");
    let host = exec(
        c,
        "client",
        &["curl", "-s", "--max-time", "5", "http://web/hostname"],
    );
    assert!(host.starts_with("db-"), "{host}");

    // Headless: every ready pod, SRV per endpoint, and one fewer after a scale-down.
    let mut want: Vec<String> = db
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    let got = dig_until(c, "client", &["db.default.svc.cluster.local"], |o| {
        sorted_lines(o) == want
    });
    assert_eq!(sorted_lines(&got), want);
    let srv = exec(
        c,
        "client",
        &[
            "dig",
            "+short",
            "SRV",
            "_http._tcp.db.default.svc.cluster.local",
        ],
    );
    assert_eq!(srv.lines().count(), 3, "{srv}");
    assert!(srv.lines().all(|l| l.contains(" 8080 ")), "{srv}");
    c.kubectl_ok(&["scale", "deployment", "db", "--replicas", "2"]);
    let got = dig_until(c, "client", &["db.default.svc.cluster.local"], |o| {
        sorted_lines(o).len() == 2
    });
    assert_eq!(sorted_lines(&got).len(), 2, "{got}");

    // ExternalName, pod names, reverse lookups, missing names.
    let cname = exec(
        c,
        "client",
        &["dig", "+short", "docs.default.svc.cluster.local"],
    );
    assert_eq!(cname.lines().next(), Some("docs.example.org."), "{cname}");
    let client_ip = json(c, &["get", "pod", "client"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let dashed = client_ip.replace('.', "-");
    let a = exec(
        c,
        "client",
        &[
            "dig",
            "+short",
            &format!("{dashed}.default.pod.cluster.local"),
        ],
    );
    assert_eq!(a.trim(), client_ip);
    let ptr = exec(c, "client", &["dig", "+short", "-x", &ip]);
    assert_eq!(ptr.trim(), "web.default.svc.cluster.local.");
    let missing = exec(c, "client", &["dig", "nothere.default.svc.cluster.local"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");

    // Outside the zone with no upstream: refused, nothing leaves the machine. dig has one try,
    // so a status at all means the server answered rather than dropped the query.
    let outside = exec(c, "client", &["dig", "+time=2", "+tries=1", "example.com"]);
    assert!(outside.contains("status: REFUSED"), "{outside}");

    // dnsPolicy None with a dnsConfig: exactly that resolv.conf.
    wait_ready(c, "run!=client,app!=db", 1);
    assert_eq!(
        exec(c, "custom", &["cat", "/etc/resolv.conf"]),
        "search a.example b.example\nnameserver 10.96.0.10\noptions ndots:2 edns0\n"
    );
}
