//! The incremental compiler against the full one: after any sequence of changes its table
//! equals a compile from nothing, and its update equals the plan of a whole diff.

use super::*;
use crate::{plan, Compiler, Ruleset};

/// A small deterministic generator (xorshift), so a failing sequence replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Policy specs covering every input a set or chain depends on: pod and namespace
/// selectors, named ports both ways, blocks, deny-all and egress.
fn specs() -> Vec<Value> {
    vec![
        json!({"podSelector": pod_is("a"), "ingress": [{"from": [{"podSelector": pod_is("b")}]}]}),
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        json!({"podSelector": {"matchLabels": {"tier": "web"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}],
                            "ports": [{"port": "serve-80-tcp"}, {"port": 81, "protocol": "UDP"}]}]}),
        json!({"podSelector": pod_is("c"), "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "db"}}}],
                           "ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}]}),
        json!({"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}},
                                     {"podSelector": {"matchLabels": {"tier": "web"}}}]}]}),
        json!({"podSelector": pod_is("b"), "ingress": [{"ports": [{"port": "serve-80-tcp"}]}],
               "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "serve-80-tcp"}]}]}),
    ]
}

fn pod_is(name: &str) -> Value {
    json!({"matchLabels": {"pod": name}})
}

/// One random change, to both the compiler and a plain cluster.
fn change(rng: &mut Rng, comp: &mut Compiler, ips: &mut u8) {
    let c = comp.cluster().clone();
    let pods: Vec<&Pod> = c.pods().collect();
    let ns = *rng.pick(&NAMESPACES);
    match rng.below(8) {
        0 | 1 => {
            let k = rng.below(specs().len());
            let spec = specs()[k].clone();
            comp.set_policy(&policy(ns, &format!("p{k}"), spec))
                .expect("policy parses");
        }
        2 => comp.remove_policy(ns, &format!("p{}", rng.below(specs().len()))),
        3 | 4 if !pods.is_empty() => {
            let mut p = (*rng.pick(&pods)).clone();
            let tier = *rng.pick(&["web", "db", "none"]);
            if tier == "none" {
                p.labels.remove("tier");
            } else {
                p.labels.insert("tier".into(), tier.into());
            }
            if rng.below(3) == 0 {
                p.node = rng.pick(&NODES).to_string();
            }
            comp.set_pod(p);
        }
        5 if !pods.is_empty() => {
            let p = rng.pick(&pods);
            comp.remove_pod(&p.namespace, &p.name);
        }
        6 => {
            // A pod back (or a new one) at an address no pod had.
            *ips += 1;
            comp.set_pod(Pod {
                namespace: ns.into(),
                name: rng.pick(&PODS).to_string(),
                labels: labels(&[("pod", PODS[rng.below(3)])]),
                ip: Ipv4Addr::new(10, 244, 3, *ips),
                node: rng.pick(&NODES).to_string(),
                ports: pods.first().map(|p| p.ports.clone()).unwrap_or_default(),
            });
        }
        _ => {
            let team = *rng.pick(&["blue", "red"]);
            comp.set_namespace(Namespace {
                name: ns.into(),
                labels: labels(&[("kubernetes.io/metadata.name", ns), ("team", team)]),
            });
        }
    }
}

#[test]
fn incremental_compiles_equal_full_ones_over_random_changes() {
    for seed in 1..=40u64 {
        let node = NODES[(seed % 2) as usize];
        let mut comp = Compiler::new(model(), node, &[node_ip(node)]);
        let mut kernel: Ruleset = comp.ruleset();
        assert_eq!(kernel, compile(&model(), node, &[node_ip(node)]));
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut ips = 0;
        for step in 0..60 {
            for _ in 0..=rng.below(3) {
                change(&mut rng, &mut comp, &mut ips);
            }
            let update = comp.sync();
            let full = compile(comp.cluster(), node, &[node_ip(node)]);
            let ctx = format!("seed {seed}, step {step}");
            assert_eq!(update, plan(Some(&kernel), &full), "{ctx}: update");
            assert_eq!(comp.ruleset(), full, "{ctx}: table");
            kernel = full;
        }
    }
}

#[test]
fn a_policy_refused_on_update_stops_applying() {
    let node = NODES[0];
    let mut comp = Compiler::new(model(), node, &[]);
    let deny = json!({"podSelector": {}});
    comp.set_policy(&policy("x", "p", deny)).unwrap();
    assert!(!comp.ruleset().counters.is_empty());
    let bad = json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]});
    assert!(comp.set_policy(&policy("x", "p", bad)).is_err());
    assert_eq!(comp.ruleset(), compile(&model(), node, &[]));
}

#[test]
fn a_peer_relabelled_changes_set_elements_only_and_an_unchanged_namespace_nothing() {
    let node = NODES[0];
    let mut comp = Compiler::new(model(), node, &[]);
    let from_b =
        json!({"podSelector": pod_is("a"), "ingress": [{"from": [{"podSelector": pod_is("b")}]}]});
    comp.set_policy(&policy("x", "p", from_b)).unwrap();
    comp.sync();
    // x/c (on either node) moves into the peer selector: its address joins the set.
    let mut c = comp.cluster().pod("x", "c").unwrap().clone();
    c.labels.insert("pod".into(), "b".into());
    comp.set_pod(c);
    let Some(crate::Update::Changes { changes, .. }) = comp.sync() else {
        panic!("an update in place");
    };
    assert!(
        changes.iter().all(|ch| matches!(
            ch,
            crate::Change::AddToSet { .. } | crate::Change::DeleteFromSet { .. }
        )),
        "{changes:?}"
    );
    // A namespace written again with the same labels changes nothing.
    let x = comp.cluster().namespaces["x"].clone();
    comp.set_namespace(x);
    assert_eq!(comp.sync(), None);
}
