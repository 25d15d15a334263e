//! Issue 4, part 2: pods for real. Sandboxes on `cbr0`, containers as processes, pod-to-pod
//! traffic over the bridge and the VXLAN overlay without NAT, identity files, kubectl
//! streaming, cleanup. Everything is checked with real kubectl, ping, curl and ip.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{show, stdout, Cluster};

pub(crate) const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.39";

pub(crate) fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl_ok(&all)).unwrap()
}

pub(crate) fn ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits until `selector` matches `count` pods, all Running and Ready; returns them.
pub(crate) fn wait_ready(c: &Cluster, selector: &str, count: usize) -> Vec<Value> {
    wait_ready_in(c, "default", selector, count)
}

/// The cluster DNS pods that `up` deploys: baselines are taken once they run.
pub(crate) fn wait_dns(c: &Cluster) {
    wait_ready_in(c, "kube-system", "k8s-app=kube-dns", 2);
}

pub(crate) fn wait_ready_in(c: &Cluster, ns: &str, selector: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = json(c, &["get", "pods", "-n", ns, "-l", selector]);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        if items.len() == count && items.iter().all(ready) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "pods {selector} not ready: {}",
            serde_json::to_string_pretty(&pods["items"]).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn wait_gone(c: &Cluster, selector: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !json(c, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .is_some_and(|i| i.is_empty())
    {
        assert!(Instant::now() < deadline, "pods {selector} not deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl apply -f -` with `yaml`, which must succeed.
pub(crate) fn apply(c: &Cluster, yaml: &str) {
    let out = crate::api_schema::kubectl_stdin(c, &["apply"], yaml);
    assert!(out.status.success(), "{}", show(&out));
}

/// An agnhost netexec Deployment `<name>` (HTTP on 8080, UDP on 8081) of `replicas`, labelled
/// `app=<name>`, once all are Ready. Its readiness probe makes Ready mean serving: without one a
/// replacement pod is Ready (and an endpoint) the moment it starts, before it listens, as upstream.
pub(crate) fn netexec_pods(c: &Cluster, name: &str, replicas: usize) -> Vec<Value> {
    apply(
        c,
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: agnhost
        image: {AGNHOST}
        command: [/agnhost, netexec, --http-port=8080, --udp-port=8081]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"
        ),
    );
    wait_ready(c, &format!("app={name}"), replicas)
}

/// The client address agnhost netexec at `to_ip:8080` saw for a request from `pod`.
fn client_ip_seen(c: &Cluster, pod: &str, to_ip: &str) -> String {
    let url = format!("http://{to_ip}:8080/clientip");
    let seen = exec(c, pod, &["curl", "-s", "--max-time", "5", &url]);
    seen.split(':').next().unwrap_or_default().to_string()
}

pub(crate) fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend(cmd);
    c.kubectl_ok(&args)
}

pub(crate) fn ip_in_cidr(ip: &str, cidr: &str) -> bool {
    let cidr: kinet_ipam::Ipv4Cidr = cidr.parse().unwrap();
    cidr.contains(ip.parse().unwrap())
}

/// The node's veths on `cbr0`.
fn node_veths(c: &Cluster, node: &str) -> BTreeSet<String> {
    let out = c.node_exec(node, &["ip", "-br", "link", "show", "type", "veth"]);
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.starts_with("veth"))
        .collect()
}

fn pod_netns(c: &Cluster) -> usize {
    let prefix = format!("kinet-{}-pod-", c.name);
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn pods_get_ips_reach_each_other_without_nat_and_clean_up() {
    pods_get_ips_reach_each_other_without_nat_and_clean_up_on(&Cluster::up(3));
}

/// The case on any cluster with at least 3 node(s); `etcd.rs` runs it on an etcd-backed one.
pub(crate) fn pods_get_ips_reach_each_other_without_nat_and_clean_up_on(c: &Cluster) {
    wait_dns(c);
    // The cluster DNS pods have theirs: only what the Deployment adds must go.
    let node_names: Vec<String> = ["control-plane", "worker", "worker2"]
        .iter()
        .map(|n| format!("{}-{n}", c.name))
        .collect();
    let veths_before: Vec<BTreeSet<String>> = node_names.iter().map(|n| node_veths(c, n)).collect();
    let netns_before = pod_netns(c);
    let pods = netexec_pods(c, "netexec", 4);

    // Placement and addressing: ≥2 nodes, each IP inside its node's podCIDR.
    let nodes = json(c, &["get", "nodes"]);
    let cidr_of = |node: &str| -> String {
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .and_then(|n| n["spec"]["podCIDR"].as_str())
            .unwrap()
            .to_string()
    };
    let mut used = BTreeSet::new();
    let mut peers = Vec::new();
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let ip = p["status"]["podIP"].as_str().unwrap();
        assert!(
            ip_in_cidr(ip, &cidr_of(node)),
            "{ip} not in {node}'s podCIDR"
        );
        used.insert(node.to_string());
        peers.push((
            p["metadata"]["name"].as_str().unwrap().to_string(),
            ip.to_string(),
        ));
    }
    assert!(used.len() >= 2, "all pods on {used:?}");

    // Every ordered pair: ping, and /clientip shows the sender's own pod IP (no NAT).
    for (from, from_ip) in &peers {
        for (_, to_ip) in peers.iter().filter(|(n, _)| n != from) {
            exec(c, from, &["ping", "-c1", "-W2", to_ip]);
            assert_eq!(
                client_ip_seen(c, from, to_ip),
                from_ip.as_str(),
                "{from} -> {to_ip}"
            );
        }
    }

    // The node view: cbr0, the pods' veths and flannel.1.
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let links = stdout(&c.node_exec(&node, &["ip", "-br", "link"]));
    for want in ["cbr0", "flannel.1", "veth"] {
        assert!(links.contains(want), "{want} missing in\n{links}");
    }
    // The pings crossed nodes inside VXLAN datagrams, which conntrack leaves alone.
    let tracked = c.node_exec(&node, &["conntrack", "-L", "-p", "udp", "--dport", "8472"]);
    assert!(
        tracked.status.success() && stdout(&tracked).is_empty(),
        "{}",
        show(&tracked)
    );
    // containerID is kinet://<pid>: nsenter into it shows the pod's eth0 address.
    let id = pods[0]["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap();
    let pid = id.strip_prefix("kinet://").expect("kinet:// container id");
    let out = std::process::Command::new("nsenter")
        .args(["-t", pid, "-n", "ip", "-br", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(pods[0]["status"]["podIP"].as_str().unwrap()),
        "{}",
        show(&out)
    );

    // Deleting the Deployment removes the pods' veths and namespaces.
    c.kubectl_ok(&["delete", "deployment", "netexec"]);
    wait_gone(c, "app=netexec");
    for (n, before) in node_names.iter().zip(&veths_before) {
        assert_eq!(&node_veths(c, n), before, "veths left on {n}");
    }
    assert_eq!(pod_netns(c), netns_before);
}

const TWO_CONTAINERS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  hostAliases:
  - ip: "10.1.2.3"
    hostnames: ["foo.local"]
  containers:
  - name: httpd
    image: httpd:latest
  - name: loop
    image: busybox:1.28.4
    command: ["sh", "-c", "while true; do curl -s localhost; sleep 1; done"]
"#;

#[test]
fn containers_share_localhost_and_identity_files() {
    let c = Cluster::up(1);
    apply(&c, TWO_CONTAINERS);
    let pod = wait_ready(&c, "app=web", 1).remove(0);
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = c.kubectl_ok(&["logs", "web", "-c", "loop"]);
        if logs.contains("It works!") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "loop never reached httpd: {logs}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let page = exec(&c, "web", &["curl", "-s", "http://web"]);
    assert!(page.contains("It works!"), "{page}");
    assert_eq!(exec(&c, "web", &["hostname"]).trim(), "web");

    let hosts = exec(&c, "web", &["cat", "/etc/hosts"]);
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file."),
        "{hosts}"
    );
    assert!(hosts.contains("127.0.0.1\tlocalhost"), "{hosts}");
    assert!(hosts.contains(&format!("{ip}\tweb")), "{hosts}");
    assert!(hosts.contains("10.1.2.3\tfoo.local"), "{hosts}");
    assert_eq!(
        exec(&c, "web", &["cat", "/etc/resolv.conf"]),
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let sa = exec(
        &c,
        "web",
        &["ls", "/var/run/secrets/kubernetes.io/serviceaccount"],
    );
    for f in ["ca.crt", "namespace", "token"] {
        assert!(sa.contains(f), "{sa}");
    }

    let mut cat = c.kubectl_cmd(&["exec", "-i", "web", "-c", "httpd", "--", "cat"]);
    let out = {
        use std::io::Write;
        let mut child = cat
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(stdout(&out), "hi\n", "{}", show(&out));

    // port-forward to httpd, from the host's loopback.
    let mut pf = c
        .kubectl_cmd(&["port-forward", "pod/web", "18099:80"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", "http://127.0.0.1:18099/"])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break stdout(&out);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(page.contains("It works!"), "port-forward gave {page:?}");
}

#[test]
fn restarts_previous_logs_and_unknown_images() {
    let c = Cluster::up(1);
    c.kubectl_ok(&[
        "run",
        "crash",
        "--image",
        "busybox",
        "--restart",
        "Always",
        "--",
        "sh",
        "-c",
        "echo run $(date +%N); sleep 1; exit 3",
    ]);
    c.kubectl_ok(&["run", "nope", "--image", "hshar/webapp"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = json(&c, &["get", "pod", "crash"]);
        let cs = &p["status"]["containerStatuses"][0];
        if cs["restartCount"].as_i64().unwrap_or(0) >= 1 {
            assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
            break;
        }
        assert!(Instant::now() < deadline, "no restart: {cs}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let previous = c.kubectl_ok(&["logs", "crash", "--previous"]);
    assert!(previous.starts_with("run "), "{previous}");
    let current = c.kubectl_ok(&["logs", "crash"]);
    assert_ne!(previous, current);

    // A killed agent comes back with `kinet up` and adopts the running sandbox: same pause,
    // same container process, same IP.
    c.kubectl_ok(&["run", "keep", "--image", "nginx"]);
    let before = wait_ready(&c, "run=keep", 1).remove(0);
    let pid_file = c
        .state_dir()
        .join(format!("agents/{}-control-plane.pid", c.name));
    let agent: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-9", &agent.to_string()])
        .status()
        .unwrap()
        .success());
    let out = c.kinet(&["up"]);
    assert!(out.status.success(), "{}", show(&out));
    let log = c
        .state_dir()
        .join(format!("logs/{}-control-plane.log", c.name));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("adopted the running sandbox")
    {
        assert!(Instant::now() < deadline, "the new agent adopted nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = wait_ready(&c, "run=keep", 1).remove(0);
    let id = |p: &Value| p["status"]["containerStatuses"][0]["containerID"].clone();
    assert_eq!(id(&after), id(&before));
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    let page = exec(&c, "keep", &["curl", "-s", "http://localhost/"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");

    let p = json(&c, &["get", "pod", "nope"]);
    let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    let reason = waiting["reason"].as_str().unwrap_or_default();
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{p}"
    );
    assert!(
        waiting["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the cluster pulls offline"),
        "{waiting}"
    );
    assert_eq!(p["status"]["phase"], "Pending");
}

#[test]
fn a_hundred_pods_come_and_go_without_leaks() {
    let c = Cluster::up(2);
    wait_dns(&c);
    let node = format!("{}-control-plane", c.name);
    let before = node_veths(&c, &node).len();
    let netns_before = pod_netns(&c);
    c.kubectl_ok(&[
        "create",
        "deployment",
        "many",
        "--image",
        AGNHOST,
        "--replicas",
        "100",
        "--",
        "/agnhost",
        "pause",
    ]);
    wait_ready(&c, "app=many", 100);
    assert_eq!(pod_netns(&c), netns_before + 100);
    c.kubectl_ok(&["delete", "deployment", "many"]);
    wait_gone(&c, "app=many");
    assert_eq!(pod_netns(&c), netns_before);
    assert_eq!(node_veths(&c, &node).len(), before);

    // After `kinet down`: no pod namespace, mount or process of this cluster is left.
    let home = c.home.display().to_string();
    let out = c.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(pod_netns(&c), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("kinet-{}-", c.name)), "{mounts}");
    assert!(!mounts.contains(&home), "{mounts}");
    assert_eq!(
        crate::containers::cgroups_left(&c.name),
        Vec::<String>::new()
    );
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(&home))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn host_gw_backend_routes_pods_across_nodes() {
    let c = Cluster::new();
    let out = c.kinet(&["up", "--nodes", "2", "--backend", "host-gw"]);
    assert!(out.status.success(), "{}", show(&out));
    let pods = netexec_pods(&c, "hg", 4);
    let nodes: BTreeSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let (from, from_ip) = (
        pods[0]["metadata"]["name"].as_str().unwrap(),
        pods[0]["status"]["podIP"].as_str().unwrap(),
    );
    for p in &pods[1..] {
        let to = p["status"]["podIP"].as_str().unwrap();
        assert_eq!(client_ip_seen(&c, from, to), from_ip, "{from} -> {to}");
    }
    // No overlay: plain routes via the other node's underlay address, no flannel.1.
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap();
    let routes = stdout(&c.node_exec(node, &["ip", "route"]));
    assert!(
        routes
            .lines()
            .any(|l| l.contains(" via 172.") && l.contains("dev eth0")),
        "{routes}"
    );
    let links = stdout(&c.node_exec(node, &["ip", "-br", "link"]));
    assert!(!links.contains("flannel.1"), "{links}");
}
