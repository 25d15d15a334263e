//! Issue 15: Service programming at scale, on a live cluster. The cluster is filled through its
//! API with Services (in a namespace of their own, each selecting pods no one runs, so each has
//! an empty EndpointSlice), and a Deployment behind one Service scales from 0 to 1 while a pod
//! on the other node curls its ClusterIP until the new pod answers: first while the cluster
//! holds 10 Services, then 10,000. Only that it works at both sizes is asserted; `kinet bench proxy` times it.

use std::time::{Duration, Instant};

use crate::harness::{show, stdout, Cluster};
use crate::pods::{apply, wait_gone, wait_ready, wait_ready_in, AGNHOST};
use crate::services::{cluster_ip, curl_tries, poll, refused};

/// How long a cluster may take to take in thousands of Services: a bound for a loaded 2-core
/// CI running a debug build, not a target.
const FILL_SETTLE: Duration = Duration::from_secs(300);

/// The Services the cluster holds, in every namespace.
fn service_count(c: &Cluster) -> usize {
    stdout(&c.kubectl(&["get", "services", "-A", "-o", "name"]))
        .lines()
        .count()
}

/// Creates filler Services through the API until the cluster holds `total`: `fill-<n>` for
/// each count n the cluster passes through, so the names never repeat.
fn fill_to(c: &Cluster, total: usize) {
    let have = service_count(c);
    assert!(have <= total, "the cluster already holds {have} Services");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(async {
            let client = kinet_bench::fill::client(&c.kubeconfig).await?;
            kinet_bench::fill::create_services(&client, have..total).await
        })
        .unwrap();
    assert_eq!(service_count(c), total);
}

/// How many ClusterIPs the proxy of `node` has programmed.
fn programmed(c: &Cluster, node: &str) -> usize {
    let out = c.node_exec(node, &["nft", "list", "set", "ip", "kinet", "cluster-ips"]);
    assert!(out.status.success(), "{}", show(&out));
    kinet_bench::fill::cluster_ips_in(&stdout(&out))
}

/// Scales `web` from 0 to 1 and curls its ClusterIP from `client` until the new pod answers;
/// then back to 0, until the ClusterIP refuses again.
fn scale_up_and_reach(c: &Cluster, client: &str, url: &str, size: &str) {
    c.kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
    let pod = wait_ready(c, "app=web", 1)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    poll(
        &format!("{size}: the new pod answers its ClusterIP"),
        || {
            let out = c.kubectl(&["exec", client, "--", "curl", "-s", "--max-time", "2", url]);
            (stdout(&out).trim() == pod).then_some(())
        },
    );
    c.kubectl_ok(&["scale", "deployment", "web", "--replicas=0"]);
    wait_gone(c, "app=web");
    poll(&format!("{size}: the ClusterIP refuses at 0"), || {
        curl_tries(c, client, url, 1)
            .iter()
            .all(refused)
            .then_some(())
    });
}

#[test]
#[ignore = "issue 15, not passing yet: on a loaded machine (load 20) the 10,000 creates took \
            880 s and the pod, Ready, was not reached through its ClusterIP within 60 s"]
fn a_deployment_scaled_from_zero_is_reached_among_ten_and_ten_thousand_services() {
    let c = Cluster::up(2);
    let (server_node, client_node) = (
        format!("{}-worker", c.name),
        format!("{}-control-plane", c.name),
    );
    apply(
        &c,
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {server_node}}}
      containers:
      - name: agnhost
        image: {AGNHOST}
        command: [/agnhost, netexec, --http-port=8080]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: {client_node}
  containers:
  - name: agnhost
    image: {AGNHOST}
    command: [/agnhost, pause]
"
        ),
    );
    wait_ready_in(&c, "default", "app=client", 1);
    let url = format!("http://{}/hostname", cluster_ip(&c, "web"));

    fill_to(&c, 10);
    let started = Instant::now();
    scale_up_and_reach(&c, "client", &url, "10 Services");
    eprintln!("10 Services: scaled 0→1→0 in {:?}", started.elapsed());

    let started = Instant::now();
    fill_to(&c, 10_000);
    eprintln!("10,000 Services created in {:?}", started.elapsed());
    // Every Service reached the client's node (no Service is headless).
    let deadline = Instant::now() + FILL_SETTLE;
    while programmed(&c, &client_node) < 10_000 {
        assert!(
            Instant::now() < deadline,
            "the proxy did not take in 10,000 Services"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "10,000 Services created and programmed in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    scale_up_and_reach(&c, "client", &url, "10,000 Services");
    eprintln!("10,000 Services: scaled 0→1→0 in {:?}", started.elapsed());
}
