//! Issue 4, part 1: real nodes. `kinet up --nodes 3` makes the underlay, a namespace per
//! node and an agent per node that registers its Node; `down` removes all of it.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{agent_running, show, stdout, Cluster};

fn nodes_json(c: &Cluster) -> Vec<Value> {
    let out = c.kubectl_ok(&["get", "nodes", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn underlay(c: &Cluster) -> String {
    let text = std::fs::read_to_string(c.state_dir().join("cluster.json")).unwrap();
    let info: Value = serde_json::from_str(&text).unwrap();
    info["underlay"]
        .as_str()
        .expect("underlay recorded")
        .to_string()
}

/// "172.18.0.0/16" -> "172.18."
fn prefix16(cidr: &str) -> String {
    let mut parts = cidr.split('.');
    format!("{}.{}.", parts.next().unwrap(), parts.next().unwrap())
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ping(cmd: &mut Command) -> bool {
    cmd.output().unwrap().status.success()
}

fn internal_ip(node: &Value) -> String {
    node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn three_nodes_register_and_reach_each_other_over_the_underlay() {
    let c = Cluster::up(3);
    let cidr = underlay(&c);
    let net = prefix16(&cidr);
    let names = [
        format!("{}-control-plane", c.name),
        format!("{}-worker", c.name),
        format!("{}-worker2", c.name),
    ];

    let wide = c.kubectl_ok(&["get", "nodes", "-o", "wide", "--no-headers"]);
    let rows: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{wide}");
    for (row, name) in rows.iter().zip(&names) {
        assert_eq!(row[0], name, "{wide}");
        assert_eq!(row[1], "Ready", "{wide}");
        assert_eq!(row[4], "v1.32.0-kinet", "{wide}");
        assert!(
            row[5].starts_with(&net),
            "INTERNAL-IP outside {cidr}: {wide}"
        );
    }
    assert_eq!(rows[0][2], "control-plane", "{wide}");

    // The controllers give every node its own podCIDR.
    let deadline = Instant::now() + Duration::from_secs(20);
    let cidrs = loop {
        let printed = c.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
        let set: BTreeSet<String> = printed.split_whitespace().map(String::from).collect();
        if set.len() == 3 || Instant::now() > deadline {
            break set;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(cidrs.len(), 3, "podCIDRs: {cidrs:?}");

    let nodes = nodes_json(&c);
    let cp = &nodes[0];
    assert_eq!(
        cp["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert!(
        cp["spec"]["taints"].is_null(),
        "control plane tainted: {cp}"
    );
    let info = &cp["status"]["nodeInfo"];
    assert!(info["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("kinet://"));
    assert!(!info["kernelVersion"].as_str().unwrap().is_empty());
    let ips: Vec<String> = nodes.iter().map(internal_ip).collect();

    let leases = c.kubectl_ok(&["get", "leases", "-n", "kube-node-lease", "--no-headers"]);
    assert_eq!(leases.lines().count(), 3, "{leases}");

    // Each node sees its own eth0 address; nodes reach each other and the host reaches them.
    let out = c.node_exec("worker", &["ip", "-br", "addr"]);
    assert!(out.status.success(), "{}", show(&out));
    let eth0 = stdout(&out)
        .lines()
        .find(|l| l.starts_with("eth0"))
        .unwrap_or_default()
        .to_string();
    assert!(eth0.contains(&format!("{}/16", ips[1])), "{}", show(&out));
    let out = c.node_exec(&names[1], &["ping", "-c1", "-W1", &ips[2]]);
    assert!(out.status.success(), "worker -> worker2\n{}", show(&out));
    // Isolated by default (see e2e::egress): the host is the way to Services only.
    let out = c.node_exec("control-plane", &["ip", "route"]);
    let routes = stdout(&out);
    assert!(
        routes.contains("unreachable default")
            && routes.contains(&format!("10.96.0.0/12 via {net}0.1 dev eth0")),
        "{}",
        show(&out)
    );
    assert!(
        ping(Command::new("ping").args(["-c1", "-W1", &ips[0]])),
        "host -> {}",
        ips[0]
    );
    let out = c.node_exec("nope", &["true"]);
    assert!(!out.status.success(), "{}", show(&out));

    // A restart recreates the namespaces and agents, and the agents adopt their Nodes.
    let uids: Vec<Value> = nodes.iter().map(|n| n["metadata"]["uid"].clone()).collect();
    let out = c.kinet(&["down", "--keep-data"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!agent_running(&c.name));
    assert!(!ip(&["netns", "list"]).contains(&format!("kinet-{}-", c.name)));
    let out = c.kinet(&["up"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for step in [
        "Preparing nodes",
        "Starting agents",
        "Waiting for nodes to be Ready",
    ] {
        assert!(err.contains(&format!(" ✓ {step}")), "{}", show(&out));
    }
    let again = nodes_json(&c);
    assert_eq!(
        again
            .iter()
            .map(|n| n["metadata"]["uid"].clone())
            .collect::<Vec<_>>(),
        uids
    );
    assert_eq!(underlay(&c), cidr, "the underlay is kept across restarts");
    assert!(ping(Command::new("ping").args(["-c1", "-W1", &ips[2]])));

    // down leaves nothing on the host.
    let out = c.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    let netns = ip(&["netns", "list"]);
    assert!(!netns.contains(&format!("kinet-{}-", c.name)), "{netns}");
    let links = ip(&["-o", "link"]);
    assert!(!links.contains(&format!("kn-{}", c.name)), "{links}");
    let routes = ip(&["route"]);
    assert!(!routes.contains(&cidr), "{routes}");
    assert!(!agent_running(&c.name), "an agent survived down");
}

#[test]
fn one_node_cluster_is_a_schedulable_control_plane() {
    let c = Cluster::up(1);
    let nodes = nodes_json(&c);
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(n["metadata"]["name"], format!("{}-control-plane", c.name));
    assert!(n["spec"]["taints"].is_null());
    assert!(node_ready(n), "{n}");
    // The lease keeps being renewed (every 10 s).
    let renew = |c: &Cluster| {
        c.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &format!("{}-control-plane", c.name),
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let first = renew(&c);
    let deadline = Instant::now() + Duration::from_secs(25);
    while renew(&c) == first && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_ne!(renew(&c), first, "lease not renewed");
}

/// Whether a Node's Ready condition is True.
pub(crate) fn node_ready(n: &Value) -> bool {
    n["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}
