//! Issue 3's acceptance, as a new user tries it with the real kubectl: the control loops that run
//! inside `kinet serve` (scheduler, deployment, replicaset, node IPAM, endpoints, garbage
//! collector, namespace, events). The clusters have no nodes (`Cluster::up(0)`), so no agent
//! runs: the tests register the Node objects themselves and play the kubelet, reporting bound
//! pods Running and Ready with an IP from their node's podCIDR and finishing graceful deletions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{show, Cluster};

/// Three nodes as a kubelet would register them; `cp` is tainted like a kubeadm control plane.
const NODES: &str = "apiVersion: v1
kind: Node
metadata:
  name: cp
  labels: {kubernetes.io/hostname: cp, node-role.kubernetes.io/control-plane: \"\"}
spec:
  taints:
  - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
status:
  conditions:
  - {type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}
  capacity: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
  allocatable: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
---
apiVersion: v1
kind: Node
metadata:
  name: w1
  labels: {kubernetes.io/hostname: w1}
status:
  conditions:
  - {type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}
  capacity: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
  allocatable: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
---
apiVersion: v1
kind: Node
metadata:
  name: w2
  labels: {kubernetes.io/hostname: w2}
status:
  conditions:
  - {type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}
  capacity: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
  allocatable: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
";

/// Polls `f` every 200ms until it returns `Some`, for at most `secs`; on timeout panics with
/// `what`, the last state `f` described, and the control plane's log tail.
fn until<T>(c: &Cluster, what: &str, secs: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                let log = c.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "timed out after {secs}s waiting for {what}\nlast state: {last}\n--- control plane log tail\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl_ok(&all)).expect("kubectl -o json prints JSON")
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn name(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Registers the three nodes and waits until node IPAM gave each a podCIDR; returns them.
fn register_nodes(c: &Cluster) -> BTreeMap<String, String> {
    let file = c.home.join("nodes.yaml");
    std::fs::write(&file, NODES).unwrap();
    let out = c.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out, "node/cp created\nnode/w1 created\nnode/w2 created\n");
    until(c, "a podCIDR on every node", 20, || {
        let cidrs: BTreeMap<String, String> = items(&get_json(c, &["nodes"]))
            .iter()
            .filter_map(|n| Some((name(n), n["spec"]["podCIDR"].as_str()?.to_string())))
            .collect();
        if cidrs.len() == 3 {
            Ok(cidrs)
        } else {
            Err(format!("{cidrs:?}"))
        }
    })
}

/// The kubelet's part, once over namespace `ns`: bound pods that are not yet Running are
/// reported Running and Ready with the next IP of their node's podCIDR, and pods being
/// deleted gracefully are finished. Returns how many pods it touched.
fn kubelet_pass(c: &Cluster, ns: &str, next_ip: &mut u32) -> usize {
    let mut touched = 0;
    let cidrs: BTreeMap<String, String> = items(&get_json(c, &["nodes"]))
        .iter()
        .filter_map(|n| Some((name(n), n["spec"]["podCIDR"].as_str()?.to_string())))
        .collect();
    for pod in items(&get_json(c, &["pods", "-n", ns])) {
        let pod_name = name(&pod);
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // The containers have stopped: the kubelet removes the pod for good.
            let out = c.kubectl(&[
                "delete",
                "pod",
                &pod_name,
                "-n",
                ns,
                "--grace-period=0",
                "--force",
                "--ignore-not-found",
            ]);
            assert!(out.status.success(), "{}", show(&out));
            touched += 1;
            continue;
        }
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if pod["status"]["phase"] == "Running" {
            continue;
        }
        let cidr = &cidrs[node];
        let prefix = cidr.trim_end_matches(".0/24");
        *next_ip += 1;
        let ip = format!("{prefix}.{}", 2 + *next_ip % 250);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ct| {
                json!({"name": ct["name"], "image": ct["image"], "imageID": "", "ready": true,
                       "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
        let status = json!({"status": {
            "phase": "Running", "hostIP": "192.168.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": now, "containerStatuses": containers,
            "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        }});
        let out = c.kubectl(&[
            "patch",
            "pod",
            &pod_name,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
        // The pod may have been deleted meanwhile; the next pass sees it.
        if out.status.success() {
            touched += 1;
        }
    }
    touched
}

/// Plays the kubelet in `default` until `done` holds, for at most `secs`.
fn converge(
    c: &Cluster,
    what: &str,
    secs: u64,
    next_ip: &mut u32,
    done: impl FnMut() -> Result<(), String>,
) {
    converge_in(c, "default", what, secs, next_ip, done)
}

/// Plays the kubelet in `ns` until `done` holds, for at most `secs`.
fn converge_in(
    c: &Cluster,
    ns: &str,
    what: &str,
    secs: u64,
    next_ip: &mut u32,
    mut done: impl FnMut() -> Result<(), String>,
) {
    until(c, what, secs, || {
        kubelet_pass(c, ns, next_ip);
        done()
    });
}

/// Pod IPs of the ready, not-terminating pods matching `selector`.
fn ready_ips(c: &Cluster, ns: &str, selector: &str) -> BTreeSet<String> {
    items(&get_json(c, &["pods", "-n", ns, "-l", selector]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect()
}

/// The images of the pods matching `selector` that are not being deleted.
fn live_images(c: &Cluster, selector: &str) -> BTreeSet<String> {
    items(&get_json(c, &["pods", "-l", selector]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

pub(crate) fn endpoint_ips(c: &Cluster, svc: &str) -> BTreeSet<String> {
    let ep = get_json(c, &["endpoints", svc]);
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect()
}

/// Addresses of the ready endpoints in the Service's EndpointSlices.
fn slice_ips(c: &Cluster, svc: &str) -> BTreeSet<String> {
    let label = format!("kubernetes.io/service-name={svc}");
    items(&get_json(c, &["endpointslices", "-l", &label]))
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] != false)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let prefix = cidr.trim_end_matches(".0/24");
    ip.rsplit_once('.').is_some_and(|(p, _)| p == prefix)
}

#[test]
fn deployment_spreads_over_nodes_and_endpoints_follow_it() {
    // Only the control plane: these tests register their own (agentless) nodes.
    let c = Cluster::up(0);
    let cidrs = register_nodes(&c);
    // Distinct /24s, as the user sees them.
    let printed = c.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let blocks: BTreeSet<&str> = printed.split_whitespace().collect();
    assert_eq!(blocks.len(), 3, "{printed}");
    assert!(
        blocks
            .iter()
            .all(|b| b.starts_with("10.244.") && b.ends_with(".0/24")),
        "{printed}"
    );
    let kubernetes = c.kubectl_ok(&["get", "svc", "kubernetes"]);
    assert!(kubernetes.contains("10.96.0.1 "), "{kubernetes}");

    c.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=6",
        "--port=80",
    ]);
    let nodes = until(&c, "6 bound pods", 30, || {
        let pods = items(&get_json(&c, &["pods", "-l", "app=web"]));
        let bound: Vec<String> = pods
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
            .collect();
        if pods.len() == 6 && bound.len() == 6 {
            Ok(bound)
        } else {
            Err(format!("{} pods, {} bound", pods.len(), bound.len()))
        }
    });
    let used: BTreeSet<&String> = nodes.iter().collect();
    assert!(used.len() >= 2, "all on one node: {nodes:?}");
    assert!(
        !used.contains(&"cp".to_string()),
        "a pod landed on the tainted control plane: {nodes:?}"
    );
    let wide = c.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(wide.lines().count(), 7, "{wide}");

    let mut next_ip = 0;
    converge(&c, "web available", 30, &mut next_ip, || {
        let d = get_json(&c, &["deploy", "web"]);
        if d["status"]["availableReplicas"] == 6 {
            Ok(())
        } else {
            Err(d["status"].to_string())
        }
    });
    // Every pod's IP lies in its node's block.
    for p in items(&get_json(&c, &["pods", "-l", "app=web"])) {
        let (ip, node) = (
            p["status"]["podIP"].as_str().unwrap(),
            p["spec"]["nodeName"].as_str().unwrap(),
        );
        assert!(
            in_cidr(ip, &cidrs[node]),
            "{ip} not in {node}'s {}",
            cidrs[node]
        );
    }
    let deploy = c.kubectl_ok(&["get", "deploy", "web"]);
    assert!(deploy.contains("6/6     6            6"), "{deploy}");

    assert_eq!(
        c.kubectl_ok(&["expose", "deployment", "web", "--port=80"]),
        "service/web exposed\n"
    );
    let ip = c.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    // 10.96.0.0/12 is 10.96.0.0 - 10.111.255.255.
    assert!(octets[0] == 10 && (96..112).contains(&octets[1]), "{ip}");
    assert_ne!(ip, "10.96.0.1");

    let want = ready_ips(&c, "default", "app=web");
    assert_eq!(want.len(), 6);
    until(&c, "6 endpoints", 20, || {
        let (ep, sl) = (endpoint_ips(&c, "web"), slice_ips(&c, "web"));
        if ep == want && sl == want {
            Ok(())
        } else {
            Err(format!("endpoints {ep:?} slices {sl:?}"))
        }
    });
    let printed = c.kubectl_ok(&["get", "endpoints", "web"]);
    assert!(
        printed.contains(":80") && printed.contains("+ 3 more"),
        "{printed}"
    );
    let printed = c.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(
        printed.contains("IPv4") && printed.contains("+ 3 more"),
        "{printed}"
    );

    c.kubectl_ok(&["scale", "deployment", "web", "--replicas=2"]);
    converge(&c, "2 endpoints after scaling", 30, &mut next_ip, || {
        let pods = items(&get_json(&c, &["pods", "-l", "app=web"]));
        let (ep, sl) = (endpoint_ips(&c, "web"), slice_ips(&c, "web"));
        if pods.len() == 2 && ep.len() == 2 && sl == ep {
            Ok(())
        } else {
            Err(format!(
                "{} pods, endpoints {ep:?}, slices {sl:?}",
                pods.len()
            ))
        }
    });
    assert_eq!(endpoint_ips(&c, "web"), ready_ips(&c, "default", "app=web"));
    let printed = c.kubectl_ok(&["get", "endpoints", "web"]);
    let row = printed.lines().nth(1).unwrap();
    assert_eq!(
        row.split_whitespace().nth(1).unwrap().split(',').count(),
        2,
        "{printed}"
    );

    // What happened, as `kubectl get events` tells it.
    let events = c.kubectl_ok(&["get", "events"]);
    for (reason, object, message) in [
        (
            "Scheduled",
            "pod/web-",
            "Successfully assigned default/web-",
        ),
        ("SuccessfulCreate", "replicaset/web-", "Created pod: web-"),
        ("SuccessfulDelete", "replicaset/web-", "Deleted pod: web-"),
        (
            "ScalingReplicaSet",
            "deployment/web",
            "Scaled up replica set web-",
        ),
        (
            "ScalingReplicaSet",
            "deployment/web",
            "Scaled down replica set web-",
        ),
    ] {
        assert!(
            events
                .lines()
                .any(|l| l.contains(reason) && l.contains(object) && l.contains(message)),
            "no {reason} event for {object}:\n{events}"
        );
    }
}

#[test]
fn rolling_update_history_and_undo() {
    // Only the control plane: these tests register their own (agentless) nodes.
    let c = Cluster::up(0);
    register_nodes(&c);
    c.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=3",
    ]);
    let mut next_ip = 0;
    let rolled_out = |c: &Cluster| -> Result<(), String> {
        let out = c.kubectl(&["rollout", "status", "deployment/web", "--watch=false"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("successfully rolled out") {
            Ok(())
        } else {
            Err(show(&out))
        }
    };
    converge(&c, "first rollout", 30, &mut next_ip, || rolled_out(&c));

    c.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    // Until the kubelet reports the new pods, the rollout waits on them.
    until(&c, "the rollout waiting on new pods", 20, || {
        let out = c.kubectl(&["rollout", "status", "deployment/web", "--watch=false"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Waiting for deployment \"web\" rollout to finish") {
            Ok(())
        } else {
            Err(show(&out))
        }
    });
    converge(&c, "rollout of nginx:1.28", 60, &mut next_ip, || {
        rolled_out(&c)
    });
    // The blocking form, as a user types it, finishes too.
    let out = c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert_eq!(out, "deployment \"web\" successfully rolled out\n");
    // Old pods may still be shutting down; the live ones all run the new image.
    let images = live_images(&c, "app=web");
    assert_eq!(images, BTreeSet::from(["nginx:1.28".to_string()]));
    let rs = items(&get_json(&c, &["rs", "-l", "app=web"]));
    assert_eq!(rs.len(), 2, "old and new ReplicaSets");
    let replicas: BTreeSet<i64> = rs
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(replicas, BTreeSet::from([0, 3]));

    let history = c.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let first = c.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(first.contains("nginx:1.27"), "{first}");

    assert_eq!(
        c.kubectl_ok(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    converge(&c, "undo back to nginx:1.27", 60, &mut next_ip, || {
        rolled_out(&c)?;
        let images = live_images(&c, "app=web");
        if images == BTreeSet::from(["nginx:1.27".to_string()]) {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
    // Undo reuses revision 1's ReplicaSet, which becomes revision 3.
    assert_eq!(items(&get_json(&c, &["rs", "-l", "app=web"])).len(), 2);
    let history = c.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let image = c.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1.27");
}

#[test]
fn cascading_deletion_and_namespace_deletion() {
    // Only the control plane: these tests register their own (agentless) nodes.
    let c = Cluster::up(0);
    register_nodes(&c);
    let mut next_ip = 0;
    for d in ["bg", "orphan", "fg"] {
        c.kubectl_ok(&["create", "deployment", d, "--image=nginx", "--replicas=2"]);
    }
    converge(&c, "3 deployments available", 30, &mut next_ip, || {
        let ds = items(&get_json(&c, &["deploy"]));
        let ready = ds
            .iter()
            .filter(|d| d["status"]["availableReplicas"] == 2)
            .count();
        if ready == 3 {
            Ok(())
        } else {
            Err(format!("{ready}/3 available"))
        }
    });

    // Background (kubectl's default): ReplicaSets and then Pods go after the Deployment.
    assert_eq!(
        c.kubectl_ok(&["delete", "deployment", "bg"]),
        "deployment.apps \"bg\" deleted\n"
    );
    converge(
        &c,
        "bg's ReplicaSets and Pods gone",
        30,
        &mut next_ip,
        || {
            let left = c.kubectl_ok(&["get", "rs,pods", "-l", "app=bg", "-o", "name"]);
            if left.is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    );

    // Orphan: the ReplicaSet stays, without its owner, and keeps its Pods.
    c.kubectl_ok(&["delete", "deployment", "orphan", "--cascade=orphan"]);
    until(&c, "orphan's ReplicaSet released", 20, || {
        let rs = items(&get_json(&c, &["rs", "-l", "app=orphan"]));
        let owners: Vec<&Value> = rs
            .iter()
            .filter(|r| {
                r["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty())
            })
            .collect();
        let deploy = c.kubectl(&["get", "deployment", "orphan"]);
        if rs.len() == 1 && owners.is_empty() && !deploy.status.success() {
            Ok(())
        } else {
            Err(format!("{rs:?}"))
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let pods = items(&get_json(&c, &["pods", "-l", "app=orphan"]));
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["deletionTimestamp"].is_null()),
        "{pods:?}"
    );
    let rs = c.kubectl_ok(&["get", "rs", "-l", "app=orphan"]);
    assert!(rs.contains(" 2         2         2 "), "{rs}");

    // Foreground: the Deployment stays, marked, until its ReplicaSet and Pods are gone.
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let d = get_json(&c, &["deployment", "fg"]);
    assert!(!d["metadata"]["deletionTimestamp"].is_null(), "{d}");
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    until(&c, "fg's pods terminating", 20, || {
        let pods = items(&get_json(&c, &["pods", "-l", "app=fg"]));
        if pods
            .iter()
            .all(|p| !p["metadata"]["deletionTimestamp"].is_null())
        {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    assert!(
        c.kubectl(&["get", "deployment", "fg"]).status.success(),
        "owner went first"
    );
    converge(
        &c,
        "fg, its ReplicaSet and Pods gone",
        30,
        &mut next_ip,
        || {
            let left = c.kubectl_ok(&["get", "deploy,rs,pods", "-l", "app=fg", "-o", "name"]);
            if left.is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    );

    // A namespace is emptied, then removed.
    c.kubectl_ok(&["create", "namespace", "team"]);
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "app",
        "--image=nginx",
        "--replicas=3",
    ]);
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ]);
    c.kubectl_ok(&["-n", "team", "expose", "deployment", "app", "--port=80"]);
    converge_in(&c, "team", "team's app available", 30, &mut next_ip, || {
        let d = get_json(&c, &["-n", "team", "deploy", "app"]);
        if d["status"]["availableReplicas"] == 3 {
            Ok(())
        } else {
            Err(d["status"].to_string())
        }
    });
    assert_eq!(
        c.kubectl_ok(&["delete", "namespace", "team", "--wait=false"]),
        "namespace \"team\" deleted\n"
    );
    let ns = c.kubectl_ok(&["get", "namespace", "team"]);
    assert!(ns.contains("Terminating"), "{ns}");
    until(&c, "namespace team removed", 45, || {
        kubelet_pass(&c, "team", &mut next_ip);
        let out = c.kubectl(&["get", "namespace", "team"]);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.contains("NotFound") {
            Ok(())
        } else {
            Err(show(&out))
        }
    });
}

#[test]
fn node_ports_and_scheduling_failures() {
    // Only the control plane: these tests register their own (agentless) nodes.
    let c = Cluster::up(0);
    register_nodes(&c);
    assert_eq!(
        c.kubectl_ok(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:80",
            "--node-port=30080"
        ]),
        "service/np created\n"
    );
    let port = c.kubectl_ok(&[
        "get",
        "svc",
        "np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(port, "30080");
    let printed = c.kubectl_ok(&["get", "svc", "np"]);
    assert!(printed.contains("80:30080/TCP"), "{printed}");
    let twice = c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80:80",
        "--node-port=30080",
    ]);
    assert!(!twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("provided port is already allocated"),
        "{}",
        show(&twice)
    );

    // A pod no node accepts stays Pending and says why.
    c.kubectl_ok(&[
        "run",
        "picky",
        "--image=nginx",
        "--overrides={\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"}}}",
    ]);
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector.";
    let described = until(&c, "FailedScheduling in describe", 20, || {
        let d = c.kubectl_ok(&["describe", "pod", "picky"]);
        if d.contains("FailedScheduling") {
            Ok(d)
        } else {
            Err(d)
        }
    });
    let line = described
        .lines()
        .find(|l| l.contains("FailedScheduling"))
        .unwrap();
    assert!(
        line.contains("Warning") && line.contains("default-scheduler") && line.contains(want),
        "{described}"
    );
    let pod = get_json(&c, &["pod", "picky"]);
    assert_eq!(pod["status"]["phase"], "Pending");
    let cond = &pod["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("PodScheduled"),
            &json!("False"),
            &json!("Unschedulable")
        )
    );

    // A pod asking for more than any node has is told so too.
    c.kubectl_ok(&["run", "huge", "--image=nginx", "--overrides={\"spec\":{\"containers\":[{\"name\":\"huge\",\"image\":\"nginx\",\"resources\":{\"requests\":{\"cpu\":\"100\"}}}]}}"]);
    let described = until(&c, "FailedScheduling for huge", 20, || {
        let d = c.kubectl_ok(&["describe", "pod", "huge"]);
        if d.contains("FailedScheduling") {
            Ok(d)
        } else {
            Err(d)
        }
    });
    assert!(described.contains("2 Insufficient cpu"), "{described}");

    // Once a node fits, the scheduler retries and binds it there.
    c.kubectl_ok(&["label", "node", "w2", "disk=ssd"]);
    let node = until(&c, "picky bound", 20, || {
        let n = c.kubectl_ok(&["get", "pod", "picky", "-o", "jsonpath={.spec.nodeName}"]);
        if n.is_empty() {
            Err("unbound".into())
        } else {
            Ok(n)
        }
    });
    assert_eq!(node, "w2");
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=picky",
    ]);
    assert!(
        events.contains("FailedScheduling")
            && events.contains("Successfully assigned default/picky to w2"),
        "{events}"
    );
}
