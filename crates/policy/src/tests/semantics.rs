//! Semantics the upstream e2e tables do not reach: defaulting, endPort, address blocks and
//! non-pod endpoints, the own-node exception, drop counters, and refused policies.

use super::*;
use crate::{Direction, PolicyError, PolicyId};

fn drop_counter(policy: &str) -> String {
    crate::drop_counter_name(&PolicyId {
        namespace: "x".into(),
        name: policy.into(),
    })
}

fn xa(c: &Cluster) -> &Pod {
    c.pod("x", "a").unwrap()
}

#[test]
fn policy_types_default_from_the_rules_present() {
    let mut c = model();
    // No policyTypes and no egress rules: Ingress only.
    apply(
        &mut c,
        "x",
        "ingress-only",
        json!({"podSelector": pod_is("a")}),
    );
    let v = c.verdict(
        Endpoint::Pod(xa(&c)),
        Endpoint::Pod(c.pod("y", "a").unwrap()),
        80,
        Tcp,
    );
    assert!(v.is_allowed(), "{v:?}");
    // Egress rules present: Egress too, so x/a may reach only port 53.
    apply(
        &mut c,
        "x",
        "with-egress",
        json!({"podSelector": pod_is("a"),
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}),
    );
    let ya = c.pod("y", "a").unwrap();
    let denied = c.verdict(Endpoint::Pod(xa(&c)), Endpoint::Pod(ya), 80, Tcp);
    assert_eq!(
        denied,
        Verdict::Denied {
            direction: Direction::Egress,
            isolated_by: vec![PolicyId {
                namespace: "x".into(),
                name: "with-egress".into()
            }],
        }
    );
    assert!(c
        .verdict(Endpoint::Pod(xa(&c)), Endpoint::Pod(ya), 53, Udp)
        .is_allowed());
}

#[test]
fn end_port_is_an_inclusive_range() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "range",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 8000, "endPort": 8010}]}]}),
    );
    let yb = c.pod("y", "b").unwrap();
    for (port, want) in [(7999, false), (8000, true), (8010, true), (8011, false)] {
        let v = c.verdict(Endpoint::Pod(yb), Endpoint::Pod(xa(&c)), port, Tcp);
        assert_eq!(v.is_allowed(), want, "{port}: {v:?}");
    }
    let rs = compile(&c, &xa(&c).node, &[]);
    for (port, want) in [(7999, false), (8000, true), (8010, true), (8011, false)] {
        let t = trace(&rs, &Packet::new(Tcp, yb.ip, xa(&c).ip, port));
        assert_eq!(t.accepted, want, "{port}: {t:?}");
    }
}

#[test]
fn ip_blocks_match_clients_outside_the_cluster() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "from-lan",
        a_from_block(json!({"cidr": "192.168.0.0/16", "except": ["192.168.9.0/24"]})),
    );
    let rs = compile(&c, &xa(&c).node, &[]);
    for (client, want) in [
        ("192.168.1.1", true),
        ("192.168.9.9", false),
        ("8.8.8.8", false),
    ] {
        let ip: Ipv4Addr = client.parse().unwrap();
        let v = c.verdict(Endpoint::External(ip), Endpoint::Pod(xa(&c)), 80, Tcp);
        assert_eq!(v.is_allowed(), want, "{client}: {v:?}");
        let t = trace(&rs, &Packet::new(Tcp, ip, xa(&c).ip, 80));
        assert_eq!(t.accepted, want, "{client}: {t:?}");
        if want {
            assert_eq!(t.ingress.as_deref(), Some("x/from-lan ingress[0]"));
        }
    }
}

fn a_from_block(block: Value) -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"from": [{"ipBlock": block}]}]})
}

#[test]
fn own_node_reaches_an_isolated_pod_and_other_nodes_do_not() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-ingress",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let a = xa(&c);
    let own = Endpoint::Host {
        node: &a.node,
        ip: node_ip(&a.node),
    };
    assert_eq!(
        c.verdict(own, Endpoint::Pod(a), 80, Tcp),
        Verdict::Allowed {
            egress: Allow::NotIsolated,
            ingress: Allow::OwnNode
        }
    );
    let other = NODES.iter().find(|n| **n != a.node).unwrap();
    let remote = Endpoint::Host {
        node: other,
        ip: node_ip(other),
    };
    assert!(!c.verdict(remote, Endpoint::Pod(a), 80, Tcp).is_allowed());

    let rs = compile(&c, &a.node, &[node_ip(&a.node)]);
    let mut probe = Packet::new(Tcp, node_ip(&a.node), a.ip, 80);
    probe.origin = crate::Origin::Host;
    assert!(
        trace(&rs, &probe).accepted,
        "kubelet probes leave through output, unfiltered"
    );
    let t = trace(&rs, &Packet::new(Tcp, node_ip(other), a.ip, 80));
    assert!(!t.accepted);
    assert_eq!(t.counters, vec![drop_counter("deny-ingress")]);
}

#[test]
fn egress_to_the_own_node_goes_through_input() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-egress",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"]}),
    );
    let a = xa(&c);
    let node = Endpoint::Host {
        node: &a.node,
        ip: node_ip(&a.node),
    };
    assert!(!c.verdict(Endpoint::Pod(a), node, 10250, Tcp).is_allowed());
    let rs = compile(&c, &a.node, &[node_ip(&a.node)]);
    assert!(!trace(&rs, &Packet::new(Tcp, a.ip, node_ip(&a.node), 10250)).accepted);
}

#[test]
fn drops_are_counted_once_per_isolating_policy() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "p1",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]}),
    );
    apply(
        &mut c,
        "x",
        "p2",
        json!({"podSelector": pod_is("a"), "ingress": [{"ports": [{"port": 82}]}]}),
    );
    let (a, yb) = (xa(&c), c.pod("y", "b").unwrap());
    let rs = compile(&c, &a.node, &[]);
    let t = trace(&rs, &Packet::new(Tcp, yb.ip, a.ip, 80));
    assert_eq!(t.counters, vec![drop_counter("p1"), drop_counter("p2")]);
    assert_eq!(
        trace(&rs, &Packet::new(Tcp, yb.ip, a.ip, 82))
            .ingress
            .as_deref(),
        Some("x/p2 ingress[0]")
    );
}

#[test]
fn chains_exist_only_for_local_isolated_pods() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-ingress",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"]}),
    );
    let a = xa(&c);
    let other = NODES.iter().find(|n| **n != a.node).unwrap();
    let here = compile(&c, &a.node, &[]);
    let chain = crate::compile::pod_chain_name(Direction::Ingress, "x", "a");
    assert!(here.chain(&chain).is_some());
    assert_eq!(here.maps["ingress-pods"].len(), 1);
    let there = compile(&c, other, &[]);
    assert!(there.maps.values().all(|m| m.is_empty()));
    assert_eq!(there.chains.len(), 2, "only the base chains");
}

#[test]
fn long_names_stay_within_nft_limits() {
    let mut c = model();
    let long = "p".repeat(253);
    apply(
        &mut c,
        "x",
        &long,
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "serve-80-tcp"}]}]}),
    );
    let rs = compile(&c, NODES[0], &[]);
    let names = rs
        .sets
        .iter()
        .map(|s| &s.name)
        .chain(rs.chains.iter().map(|c| &c.name))
        .chain(&rs.counters);
    for n in names {
        assert!(n.len() <= 256, "{n}");
    }
}

#[test]
fn unusable_policies_are_refused() {
    let mut c = model();
    let cases = [
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/40"}}]}]}),
            PolicyError::Cidr("10.0.0.0/40".into()),
        ),
        (
            json!({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}),
            PolicyError::Protocol("ICMP".into()),
        ),
        (
            json!({"ingress": [{"ports": [{"port": 70000}]}]}),
            PolicyError::Port("70000".into()),
        ),
        (json!({"ingress": [{"from": [{}]}]}), PolicyError::EmptyPeer),
    ];
    for (spec, err) in cases {
        assert_eq!(c.set_policy(&policy("x", "bad", spec)), Err(err));
    }
    let bad_op = json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}});
    assert!(matches!(
        c.set_policy(&policy("x", "bad", bad_op)),
        Err(PolicyError::Selector(_))
    ));
    assert!(c.policies.is_empty());
}

#[test]
fn pods_from_api_objects() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080}, {"containerPort": 9090}]}]},
        "status": {"podIP": "10.244.1.5"}}))
    .unwrap();
    let p = Pod::from_k8s(&pod).unwrap();
    assert_eq!(p.ip, Ipv4Addr::new(10, 244, 1, 5));
    assert_eq!(
        p.ports,
        vec![ContainerPort {
            name: "http".into(),
            port: 8080,
            proto: Tcp
        }]
    );
    let mut host = pod.clone();
    host.spec.as_mut().unwrap().host_network = Some(true);
    assert_eq!(Pod::from_k8s(&host), None);
    let mut pending = pod;
    pending.status = None;
    assert_eq!(Pod::from_k8s(&pending), None);
}
