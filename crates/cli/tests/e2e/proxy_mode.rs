//! Issue 18: kube-proxy's iptables mode, tried as the tutorial does. In a cluster made with
//! `--proxy-mode iptables`, the nginx Deployment behind `nginx-service` (ClusterIP) and
//! `nginx-nodeport` (NodePort 30080) shows as KUBE-SVC/KUBE-SEP chains in `iptables-save`
//! and answers through both; `kinet up --proxy-mode nftables` on the running cluster keeps
//! the NodePort answering throughout and leaves no KUBE chain behind. `--proxy-mode ipvs` is
//! refused naming the missing kernel module.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::harness::{kinet, show, stdout, temp_home, Cluster};
use crate::pods::{apply, exec, wait_ready};
use crate::services::{client, host_curl, node_ips, poll};

const NGINX: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx}
spec:
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx-service}
spec:
  selector: {app: nginx}
  ports: [{protocol: TCP, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx-nodeport}
spec:
  type: NodePort
  selector: {app: nginx}
  ports: [{protocol: TCP, port: 80, targetPort: 80, nodePort: 30080}]
"#;

/// `iptables-save` on `node`, the lines naming KUBE chains.
fn kube_lines(c: &Cluster, node: &str) -> Vec<String> {
    let out = c.node_exec(node, &["iptables-save"]);
    assert!(out.status.success(), "{}", show(&out));
    stdout(&out)
        .lines()
        .filter(|l| l.contains("KUBE"))
        .map(str::to_string)
        .collect()
}

/// Whether `node` holds the nftables mode's table.
fn has_nft_table(c: &Cluster, node: &str) -> bool {
    c.node_exec(node, &["nft", "list", "table", "ip", "kinet"])
        .status
        .success()
}

fn status(c: &Cluster) -> String {
    let out = c.kinet(&["status"]);
    assert!(out.status.success(), "{}", show(&out));
    stdout(&out)
}

/// An answer through the ClusterIP from a pod and through the NodePort of every node from
/// the host.
fn both_services_answer(c: &Cluster, pod: &str, nodes: &[(String, String)]) {
    poll("nginx-service answers from a pod", || {
        let code = exec(
            c,
            pod,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "http://nginx-service",
            ],
        );
        (code == "200").then_some(())
    });
    for (_, ip) in nodes {
        poll("nginx-nodeport answers from the host", || {
            host_curl(&format!("http://{ip}:30080/"))
        });
    }
}

#[test]
fn iptables_mode_shows_the_tutorials_chains_and_switches_live() {
    let c = Cluster::up_with(2, &["--proxy-mode", "iptables"]);
    assert!(
        status(&c).contains("Proxy mode:  iptables"),
        "{}",
        status(&c)
    );
    apply(&c, NGINX);
    wait_ready(&c, "app=nginx", 2);
    let pod = client(&c);
    let nodes = node_ips(&c);
    both_services_answer(&c, &pod, &nodes);

    // The tutorial's `iptables-save | grep KUBE | grep nginx`, on every node.
    for (node, _) in &nodes {
        let nginx = poll("KUBE-SVC and KUBE-SEP lines for both Services", || {
            let lines: Vec<String> = kube_lines(&c, node)
                .into_iter()
                .filter(|l| l.contains("nginx"))
                .collect();
            let names = |chain: &str, svc: &str| {
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("-A {chain}")) && l.contains(svc))
            };
            ["default/nginx-service", "default/nginx-nodeport"]
                .iter()
                .all(|svc| names("KUBE-SVC-", svc) && names("KUBE-SEP-", svc))
                .then_some(lines)
        });
        assert!(
            nginx
                .iter()
                .any(|l| l.contains(r#"--comment "default/nginx-service cluster IP""#)),
            "{nginx:#?}"
        );
        assert!(
            !has_nft_table(&c, node),
            "no nftables-mode table in iptables mode"
        );
    }

    // Switch the running cluster: the NodePort keeps answering from the host all along.
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("http://{}:30080/", nodes[0].1);
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                match host_curl(&url) {
                    Some(_) => ok += 1,
                    None => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let out = c.kinet(&["up", "--proxy-mode", "nftables", "--offline-images"]);
    assert!(out.status.success(), "{}", show(&out));
    for (node, _) in &nodes {
        poll("the old mode's chains are gone", || {
            (kube_lines(&c, node).is_empty() && has_nft_table(&c, node)).then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = prober.join().unwrap();
    assert!(
        ok > 0 && failed == 0,
        "{failed} of {} requests failed during the switch",
        ok + failed
    );
    assert!(status(&c).contains("Proxy mode:  nftables"));
    both_services_answer(&c, &pod, &nodes);
}

#[test]
fn ipvs_mode_is_refused_naming_the_kernel_module() {
    let home = temp_home();
    let out = kinet(
        home.path(),
        &["up", "--proxy-mode", "ipvs", "--name", "never"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ip_vs"), "{err}");
    assert!(!home.path().join("never").exists(), "nothing is created");
}
