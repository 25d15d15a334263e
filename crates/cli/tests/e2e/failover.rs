//! Issue 17, several API servers: with two `kinet serve` on one etcd (`--api-servers 2`),
//! kill -9 the one the agents use (it also leads the control loops: the first server up
//! does). kubectl against the other keeps working, no acknowledged write is lost, a watch
//! opened on the killed server resumes on the other from its last resourceVersion with no
//! event missing, and a pod created after the kill is scheduled, started and Ready (agents,
//! scheduler and controllers failed over). `etcd.rs` runs it on its cluster.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::durability::{kill_9_control_plane, list_rv};
use crate::harness::{show, Cluster};
use crate::services::poll;

/// The two servers' URLs on the host and addresses on the underlay, from `cluster.json`.
struct Servers {
    port: u16,
    gateway: String,
    second: String,
}

impl Servers {
    fn of(c: &Cluster) -> Servers {
        let info: Value = serde_json::from_str(
            &std::fs::read_to_string(c.state_dir().join("cluster.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(info["api_servers"], 2, "{info}");
        let octets: Vec<&str> = info["underlay"].as_str().unwrap().split('.').collect();
        Servers {
            port: info["port"].as_u64().unwrap() as u16,
            gateway: format!("{}.{}.0.1", octets[0], octets[1]),
            second: format!("{}.{}.255.1", octets[0], octets[1]),
        }
    }

    fn other_url(&self) -> String {
        format!("https://127.0.0.2:{}", self.port)
    }
}

/// kubectl against the second server only.
fn at_other<'a>(s: &'a Servers, args: &[&'a str]) -> Vec<String> {
    let mut all = vec!["--server".to_string(), s.other_url()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn kubectl_other(c: &Cluster, s: &Servers, args: &[&str]) -> String {
    let all = at_other(s, args);
    c.kubectl_ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The underlay addresses the node's agent has API connections to (`ss` in its namespace).
fn agent_peers(c: &Cluster, node: &str, port: u16) -> Vec<String> {
    let filter = format!("( dport = :{port} )");
    let out = c.node_exec(node, &["ss", "-Htn", "state", "established", &filter]);
    assert!(out.status.success(), "{}", show(&out));
    let mut peers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|peer| peer.rsplit_once(':').map(|(ip, _)| ip.to_string()))
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

/// A raw watch of `default` ConfigMaps through kubectl from `rv`, its events gathered by a
/// thread as (name, resourceVersion) in arrival order.
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<(String, u64)>>>,
}

impl Watch {
    fn open(c: &Cluster, server: Option<&Servers>, rv: u64) -> Watch {
        let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}");
        let mut args = vec!["get".to_string(), "--raw".into(), path];
        if let Some(s) = server {
            args = at_other(s, &args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let mut child = c
            .kubectl_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let gathered = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let meta = &event["object"]["metadata"];
                let (Some(name), Some(rv)) =
                    (meta["name"].as_str(), meta["resourceVersion"].as_str())
                else {
                    continue;
                };
                gathered
                    .lock()
                    .unwrap()
                    .push((name.to_string(), rv.parse().unwrap()));
            }
        });
        Watch { child, events }
    }

    /// This test's ConfigMaps' events (the namespace's root CA ConfigMap may change too).
    fn seen(&self) -> Vec<(String, u64)> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|(name, _)| name.contains("-kill-"))
            .cloned()
            .collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // This test's own kubectl, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates ConfigMap `name` with `kubectl` args; its resourceVersion.
fn create(c: &Cluster, s: Option<&Servers>, name: &str) -> u64 {
    let args = [
        "create",
        "configmap",
        name,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ];
    let out = match s {
        Some(s) => kubectl_other(c, s, &args),
        None => c.kubectl_ok(&args),
    };
    out.trim().parse().unwrap()
}

fn lease_holder(c: &Cluster, s: &Servers) -> String {
    kubectl_other(
        c,
        s,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
}

fn kubernetes_endpoints(c: &Cluster, s: &Servers) -> String {
    kubectl_other(
        c,
        s,
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ],
    )
}

pub(crate) fn the_other_server_takes_over_after_a_kill_9_on(c: &Cluster) {
    let s = Servers::of(c);
    let node = format!("{}-control-plane", c.name);
    let both = format!("{} {}", s.gateway, s.second);
    assert_eq!(kubernetes_endpoints(c, &s), both);
    // The agent uses the first server, which leads the loops.
    assert_eq!(agent_peers(c, &node, s.port), [s.gateway.as_str()]);
    let first_leader = lease_holder(c, &s);
    assert!(
        first_leader.ends_with(&format!("_{}", s.port)),
        "{first_leader}"
    );

    // A watch on the first server, and writes it delivers.
    let watch = Watch::open(c, None, list_rv(c));
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..5 {
        let name = format!("before-kill-{i}");
        acked.insert(name.clone(), create(c, None, &name));
    }
    poll("the first watch delivers the creates", || {
        (watch.seen().len() == acked.len()).then_some(())
    });

    kill_9_control_plane(c);

    // kubectl against the other server works at once.
    for i in 0..5 {
        let name = format!("after-kill-{i}");
        acked.insert(name.clone(), create(c, Some(&s), &name));
    }
    // The first watch ended with its server; it resumes on the other from the last
    // resourceVersion it saw, and the two streams together hold every write once, in order.
    let before = watch.seen();
    let last = before.last().map(|(_, rv)| *rv).unwrap();
    let resumed = Watch::open(c, Some(&s), last);
    poll(
        "the resumed watch delivers the creates after the kill",
        || (before.len() + resumed.seen().len() >= acked.len()).then_some(()),
    );
    let all: Vec<(String, u64)> = before.into_iter().chain(resumed.seen()).collect();
    let streamed: BTreeMap<String, u64> = all.iter().cloned().collect();
    assert_eq!(streamed, acked, "events: {all:?}");
    assert!(
        all.windows(2).all(|w| w[0].1 < w[1].1),
        "out of order: {all:?}"
    );

    // Every acknowledged write is stored.
    let names = kubectl_other(
        c,
        &s,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    for name in acked.keys() {
        assert!(
            names.split_whitespace().any(|n| n == name),
            "{name} lost: {names}"
        );
    }

    // A pod created now is scheduled, started and Ready: the agent, the scheduler and the
    // controllers moved to the surviving server.
    kubectl_other(c, &s, &["run", "after-kill", "--image=nginx"]);
    kubectl_other(
        c,
        &s,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/after-kill",
            "--timeout=120s",
        ],
    );
    assert_eq!(agent_peers(c, &node, s.port), [s.second.as_str()]);
    let leader = lease_holder(c, &s);
    assert!(leader.ends_with(&format!("_{}-1", s.port)), "{leader}");
    // The dead server leaves the `kubernetes` endpoints once its Lease runs out.
    poll(
        "the dead server dropped from the kubernetes endpoints",
        || (kubernetes_endpoints(c, &s) == s.second).then_some(()),
    );
    kubectl_other(c, &s, &["delete", "pod", "after-kill", "--wait=true"]);
    kubectl_other(c, &s, &["delete", "configmaps", "--all"]);

    // `kinet up` brings the killed server back beside the running one.
    let up = c.kinet(&["up"]);
    assert!(up.status.success(), "restart failed\n{}", show(&up));
    poll("both servers listed again", || {
        (kubernetes_endpoints(c, &s) == both).then_some(())
    });
}
