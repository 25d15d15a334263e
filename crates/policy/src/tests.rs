//! The upstream NetworkPolicy e2e model (kubernetes test/e2e/network/netpol), re-expressed:
//! namespaces x, y, z with pods a, b, c serving 80 and 81 on TCP, UDP and SCTP with ports
//! named `serve-<port>-<proto>`, and every connectivity case with its expected truth table.
//! Each check also runs every cell through the compiled rulesets of the source's and the
//! destination's nodes, and requires the tracer to agree with the model, down to the rule.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::serde_json::{self, json, Value};

use crate::{
    compile, trace, Allow, Cluster, ContainerPort, Endpoint, Namespace, Packet, Pod, Proto, Verdict,
};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];
const NODES: [&str; 2] = ["node-1", "node-2"];
use Proto::{Sctp, Tcp, Udp};

fn node_ip(node: &str) -> Ipv4Addr {
    if node == NODES[0] {
        Ipv4Addr::new(172, 18, 0, 2)
    } else {
        Ipv4Addr::new(172, 18, 0, 3)
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The 9-pod model, spread over two nodes so cells cover one-node and cross-node paths.
pub(crate) fn model() -> Cluster {
    let mut c = Cluster::new();
    for (n, ns) in NAMESPACES.iter().enumerate() {
        c.set_namespace(Namespace {
            name: ns.to_string(),
            labels: labels(&[("kubernetes.io/metadata.name", ns), ("ns", ns)]),
        });
        for (i, pod) in PODS.iter().enumerate() {
            let k = n * 3 + i;
            let node = NODES[k % 2];
            let ports = [80, 81]
                .into_iter()
                .flat_map(|port| {
                    [Tcp, Udp, Sctp].map(|proto| ContainerPort {
                        name: format!("serve-{port}-{proto}"),
                        port,
                        proto,
                    })
                })
                .collect();
            c.set_pod(Pod {
                namespace: ns.to_string(),
                name: pod.to_string(),
                labels: labels(&[("pod", pod)]),
                ip: Ipv4Addr::new(10, 244, 1 + (k % 2) as u8, 10 + k as u8),
                node: node.to_string(),
                ports,
            });
        }
    }
    c
}

pub(crate) fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("a valid NetworkPolicy")
}

fn apply(c: &mut Cluster, ns: &str, name: &str, spec: Value) {
    c.set_policy(&policy(ns, name, spec))
        .expect("policy parses");
}

fn ip_of(c: &Cluster, ns: &str, pod: &str) -> Ipv4Addr {
    c.pod(ns, pod).expect("pod exists").ip
}

/// An expected truth table: "from → to" cells, all allowed to start with; patterns are
/// `*`, `ns/*` or `ns/pod`, and later settings override earlier ones.
struct Reach(BTreeMap<(String, String), bool>);

fn pod_names() -> Vec<String> {
    NAMESPACES
        .iter()
        .flat_map(|n| PODS.iter().map(move |p| format!("{n}/{p}")))
        .collect()
}

fn matches(pattern: &str, pod: &str) -> bool {
    pattern == "*"
        || pattern == pod
        || pattern
            .strip_suffix("/*")
            .is_some_and(|ns| pod.starts_with(&format!("{ns}/")))
}

impl Reach {
    fn all() -> Reach {
        let pods = pod_names();
        Reach(
            pods.iter()
                .flat_map(|f| pods.iter().map(move |t| ((f.clone(), t.clone()), true)))
                .collect(),
        )
    }
    fn peer(mut self, from: &str, to: &str, v: bool) -> Reach {
        for ((f, t), cell) in self.0.iter_mut() {
            if matches(from, f) && matches(to, t) {
                *cell = v;
            }
        }
        self
    }
    fn to(self, to: &str, v: bool) -> Reach {
        self.peer("*", to, v)
    }
    fn from(self, from: &str, v: bool) -> Reach {
        self.peer(from, "*", v)
    }
}

/// Asserts the model gives `want` on `port`/`proto` (loopback cells ignored, as upstream does),
/// and that the compiled rulesets agree with the model on every cell.
fn check(c: &Cluster, port: u16, proto: Proto, want: &Reach) {
    let rulesets: BTreeMap<&str, _> = NODES
        .iter()
        .map(|n| (*n, compile(c, n, &[node_ip(n)])))
        .collect();
    let mut wrong = Vec::new();
    for ((from, to), expected) in &want.0 {
        let (fns, fp) = from.split_once('/').unwrap();
        let (tns, tp) = to.split_once('/').unwrap();
        let (src, dst) = (c.pod(fns, fp).unwrap(), c.pod(tns, tp).unwrap());
        let v = c.verdict(Endpoint::Pod(src), Endpoint::Pod(dst), port, proto);
        if from != to && v.is_allowed() != *expected {
            wrong.push(format!("{from} -> {to}: want {expected}, model {v:?}"));
        }
        // The packet crosses the forward hook of the source's node, then the destination's.
        let pkt = Packet::new(proto, src.ip, dst.ip, port);
        let mut nodes = vec![src.node.as_str(), dst.node.as_str()];
        nodes.dedup();
        let traces: Vec<_> = nodes.iter().map(|n| trace(&rulesets[n], &pkt)).collect();
        let accepted = traces.iter().all(|t| t.accepted);
        let rule = |a: &Allow| match a {
            Allow::Rule(r) => Some(r.to_string()),
            _ => None,
        };
        let (egress, ingress) = match &v {
            Verdict::Allowed { egress, ingress } => (rule(egress), rule(ingress)),
            Verdict::Denied { .. } => (None, None),
        };
        let traced_egress = traces.iter().find_map(|t| t.egress.clone());
        let traced_ingress = traces.iter().find_map(|t| t.ingress.clone());
        if from != to
            && (accepted != v.is_allowed()
                || (accepted && (traced_egress != egress || traced_ingress != ingress)))
        {
            wrong.push(format!("{from} -> {to}: model {v:?}, tracer {traces:?}"));
        }
    }
    assert!(wrong.is_empty(), "{port}/{proto}:\n{}", wrong.join("\n"));
}

fn tcp80(c: &Cluster, want: Reach) {
    check(c, 80, Tcp, &want);
}

fn ns_is(ns: &str) -> Value {
    json!({"matchLabels": {"kubernetes.io/metadata.name": ns}})
}
fn pod_is(pod: &str) -> Value {
    json!({"matchLabels": {"pod": pod}})
}
fn ns_not_in(ns: &str) -> Value {
    json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [ns]}]})
}

mod compiler;
mod golden;
mod matrix;
mod plan;
mod semantics;
mod upstream;
