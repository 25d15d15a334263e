//! Packet-level behaviour of rendered rulesets, checked with the tracer.

use std::net::SocketAddrV4;

use crate::common::*;
use kinet_proxy_rules::{render, trace, trace_detailed, Packet, Proto, Verdict};
use serde_json::json;

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn eps(list: &[&str]) -> Vec<SocketAddrV4> {
    list.iter().map(|s| sa(s)).collect()
}

#[test]
fn clusterip_is_dnated_to_ready_endpoints_without_snat() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let v = trace(&rs, &Packet::tcp(ip("10.244.1.9"), ip("10.96.0.20"), 80));
    assert_eq!(
        v.endpoints(),
        eps(&["10.244.1.5:8080", "10.244.2.7:8080", "10.244.2.8:8080"]),
        "not-ready 10.244.2.9 must not be used"
    );
    let Verdict::Dnat(targets) = &v else {
        panic!("{v:?}")
    };
    assert!(
        targets.iter().all(|t| !t.masquerade),
        "pod-to-pod keeps its source"
    );
}

#[test]
fn hairpin_to_self_is_masqueraded() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let Verdict::Dnat(targets) = trace(&rs, &Packet::tcp(ip("10.244.1.5"), ip("10.96.0.20"), 80))
    else {
        panic!()
    };
    for t in targets {
        assert_eq!(t.masquerade, t.to == sa("10.244.1.5:8080"), "{t:?}");
    }
}

#[test]
fn clusterip_from_host_is_masqueraded() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let v = trace(
        &rs,
        &Packet::tcp(ip("192.168.0.2"), ip("10.96.0.20"), 80).from_host(),
    );
    assert_eq!(v.endpoints().len(), 3);
    assert!(v.masqueraded());
}

#[test]
fn wrong_port_wrong_proto_and_unallocated_ip() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let pod = ip("10.244.1.9");
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, ip("10.96.0.20"), 81)),
        Verdict::Reject
    );
    assert_eq!(
        trace(&rs, &Packet::udp(pod, ip("10.96.0.20"), 80)),
        Verdict::Reject
    );
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, ip("10.96.0.99"), 80)),
        Verdict::Drop
    );
    // Not service traffic at all.
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, ip("10.244.2.7"), 8080)),
        Verdict::Accept
    );
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, ip("8.8.8.8"), 443)),
        Verdict::Accept
    );
}

#[test]
fn service_without_endpoints_is_rejected_everywhere() {
    let svc = service(
        "default",
        "empty",
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.60",
            "externalIPs": ["198.51.100.6"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30060}]
        }),
        Some(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.60"}]}})),
    );
    let rs = render(&[svc], &[], &node("node-a"), &config());
    let pod = ip("10.244.1.9");
    let outside = ip("172.16.0.50");
    for p in [
        Packet::tcp(pod, ip("10.96.0.60"), 80),
        Packet::tcp(pod, ip("10.96.0.60"), 80).from_host(),
        Packet::tcp(outside, ip("198.51.100.6"), 80),
        Packet::tcp(outside, ip("203.0.113.60"), 80),
        Packet::tcp(outside, ip("192.168.0.2"), 30060),
    ] {
        assert_eq!(trace(&rs, &p), Verdict::Reject, "{p:?}");
    }
}

#[test]
fn nodeport_cluster_policy_from_outside_is_masqueraded() {
    let (svcs, slices) = edge("Cluster");
    let rs = render(&svcs, &slices, &node("node-c"), &config());
    let v = trace(
        &rs,
        &Packet::tcp(ip("172.16.0.50"), ip("192.168.0.4"), 30080),
    );
    assert_eq!(v.endpoints(), eps(&["10.244.1.5:8080", "10.244.2.7:8080"]));
    assert!(v.masqueraded());
    // Same for the LB IP and the external IP.
    for dst in ["203.0.113.10", "198.51.100.5"] {
        let v = trace(&rs, &Packet::tcp(ip("172.16.0.50"), ip(dst), 80));
        assert_eq!(v.endpoints().len(), 2);
        assert!(v.masqueraded(), "{dst}");
    }
    // NodePort on another node's IP is not this node's business.
    let v = trace(
        &rs,
        &Packet::tcp(ip("172.16.0.50"), ip("192.168.0.2"), 30080),
    );
    assert_eq!(v, Verdict::Accept);
}

#[test]
fn load_balancer_source_ranges_drop_other_clients() {
    let (svcs, slices) = guarded();
    let lb = |src: &str| Packet::tcp(ip(src), ip("203.0.113.70"), 80);
    for name in ["node-a", "node-c"] {
        let rs = render(&svcs, &slices, &node(name), &config());
        let v = trace(&rs, &lb("172.16.0.50"));
        assert_eq!(v.endpoints(), eps(&["10.244.1.5:8080", "10.244.2.7:8080"]));
        assert!(v.masqueraded());
        // Outside the ranges: dropped, pods included; the NodePort and the ClusterIP are
        // not load-balancer traffic, so the ranges do not apply to them.
        for src in ["172.16.1.50", "10.244.1.9"] {
            assert_eq!(trace(&rs, &lb(src)), Verdict::Drop, "{name}: {src}");
        }
        let np = Packet::tcp(ip("172.16.1.50"), node(name).node_ips[0], 30070);
        assert_eq!(trace(&rs, &np).endpoints().len(), 2, "{name}");
        let cip = Packet::tcp(ip("10.244.1.9"), ip("10.96.0.70"), 80);
        assert_eq!(trace(&rs, &cip).endpoints().len(), 2, "{name}");
    }
    // A range holds node-a's address, so node-a's own requests to the address it holds
    // (with that address as their source) pass; node-c's range is not its own.
    let from_lb = Packet::tcp(ip("203.0.113.70"), ip("203.0.113.70"), 80).from_host();
    let on_a = render(&svcs, &slices, &node("node-a"), &config());
    assert_eq!(trace(&on_a, &from_lb).endpoints().len(), 2);
    let on_c = render(&svcs, &slices, &node("node-c"), &config());
    assert_eq!(trace(&on_c, &from_lb), Verdict::Drop);
}

#[test]
fn local_policy_uses_only_local_endpoints_and_keeps_source() {
    let (svcs, slices) = edge("Local");
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let outside = ip("172.16.0.50");
    for p in [
        Packet::tcp(outside, ip("192.168.0.2"), 30080),
        Packet::tcp(outside, ip("203.0.113.10"), 80),
        Packet::tcp(outside, ip("198.51.100.5"), 80),
    ] {
        let v = trace(&rs, &p);
        assert_eq!(v.endpoints(), eps(&["10.244.1.5:8080"]), "{p:?}");
        assert!(!v.masqueraded(), "{p:?}");
    }
    // ClusterIP traffic is unaffected by externalTrafficPolicy.
    let v = trace(&rs, &Packet::tcp(ip("10.244.1.9"), ip("10.96.0.30"), 80));
    assert_eq!(v.endpoints().len(), 2);
}

#[test]
fn local_policy_without_local_endpoints_drops_external_traffic() {
    let (svcs, slices) = edge("Local");
    let rs = render(&svcs, &slices, &node("node-c"), &config());
    let outside = ip("172.16.0.50");
    assert_eq!(
        trace(&rs, &Packet::tcp(outside, ip("192.168.0.4"), 30080)),
        Verdict::Drop
    );
    assert_eq!(
        trace(&rs, &Packet::tcp(outside, ip("203.0.113.10"), 80)),
        Verdict::Drop
    );
    assert_eq!(
        trace(&rs, &Packet::tcp(outside, ip("198.51.100.5"), 80)),
        Verdict::Drop
    );

    // Pods short-circuit to all endpoints, as if they went via the LB.
    let v = trace(&rs, &Packet::tcp(ip("10.244.3.4"), ip("203.0.113.10"), 80));
    assert_eq!(v.endpoints().len(), 2);
    assert!(!v.masqueraded());
    // The node itself too, masqueraded since its source is a node address.
    let v = trace(
        &rs,
        &Packet::tcp(ip("192.168.0.4"), ip("203.0.113.10"), 80).from_host(),
    );
    assert_eq!(v.endpoints().len(), 2);
    assert!(v.masqueraded());
}

#[test]
fn internal_traffic_policy_local() {
    let svc = service(
        "default",
        "node-local",
        json!({
            "clusterIP": "10.96.0.70",
            "internalTrafficPolicy": "Local",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]
        }),
        None,
    );
    let sl = slice(
        "default",
        "node-local",
        "nl-1",
        json!([{"name": "dns", "port": 5353, "protocol": "UDP"}]),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    let a = render(
        std::slice::from_ref(&svc),
        std::slice::from_ref(&sl),
        &node("node-a"),
        &config(),
    );
    let v = trace(&a, &Packet::udp(ip("10.244.1.9"), ip("10.96.0.70"), 53));
    assert_eq!(v.endpoints(), eps(&["10.244.1.5:5353"]));
    let c = render(&[svc], &[sl], &node("node-c"), &config());
    let v = trace(&c, &Packet::udp(ip("10.244.3.9"), ip("10.96.0.70"), 53));
    assert_eq!(v, Verdict::Drop);
}

#[test]
fn terminating_endpoints_are_a_fallback_only() {
    let svc = cluster_ip("default", "roll", "10.96.0.80", "http", 80);
    let mk = |eps: Vec<serde_json::Value>| {
        slice("default", "roll", "roll-1", tcp_port("http", 8080), eps)
    };
    let old = ep_cond("10.244.2.7", "node-b", false, true, true);
    let gone = ep_cond("10.244.2.8", "node-b", false, false, true);
    let new = ep("10.244.1.5", "node-a");
    let pkt = Packet::tcp(ip("10.244.1.9"), ip("10.96.0.80"), 80);

    let rs = render(
        std::slice::from_ref(&svc),
        &[mk(vec![old.clone(), gone.clone(), new])],
        &node("node-a"),
        &config(),
    );
    assert_eq!(trace(&rs, &pkt).endpoints(), eps(&["10.244.1.5:8080"]));
    let rs = render(&[svc], &[mk(vec![old, gone])], &node("node-a"), &config());
    assert_eq!(trace(&rs, &pkt).endpoints(), eps(&["10.244.2.7:8080"]));
}

#[test]
fn named_ports_map_to_their_own_target_ports() {
    let svc = service(
        "shop",
        "api",
        json!({
            "clusterIP": "10.96.0.40",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web"},
                {"name": "metrics", "port": 9090, "targetPort": "prom"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "ctl", "port": 7000, "protocol": "SCTP"}
            ]
        }),
        None,
    );
    // Ports split across two slices, listed in a different order.
    let s1 = slice(
        "shop",
        "api",
        "api-1",
        json!([{"name": "metrics", "port": 9100}, {"name": "http", "port": 8080}]),
        vec![ep("10.244.1.10", "node-a")],
    );
    let s2 = slice(
        "shop",
        "api",
        "api-2",
        json!([
            {"name": "dns", "port": 5353, "protocol": "UDP"},
            {"name": "ctl", "port": 7001, "protocol": "SCTP"}
        ]),
        vec![ep("10.244.2.10", "node-b")],
    );
    let rs = render(&[svc], &[s1, s2], &node("node-a"), &config());
    let pod = ip("10.244.1.9");
    let cip = ip("10.96.0.40");
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, cip, 80)).endpoints(),
        eps(&["10.244.1.10:8080"])
    );
    assert_eq!(
        trace(&rs, &Packet::tcp(pod, cip, 9090)).endpoints(),
        eps(&["10.244.1.10:9100"])
    );
    assert_eq!(
        trace(&rs, &Packet::udp(pod, cip, 53)).endpoints(),
        eps(&["10.244.2.10:5353"])
    );
    let sctp = Packet::new(Proto::Sctp, pod, cip, 7000);
    assert_eq!(trace(&rs, &sctp).endpoints(), eps(&["10.244.2.10:7001"]));
    // Four service ports, each with its own service chain (endpoints are map elements).
    assert_eq!(rs.chains_for("shop", "api").len(), 4);
}

#[test]
fn affinity_checks_sets_before_random_choice() {
    let svc = service(
        "default",
        "sticky",
        json!({
            "clusterIP": "10.96.0.50",
            "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80}]
        }),
        None,
    );
    let sl = slice(
        "default",
        "sticky",
        "s-1",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    let rs = render(&[svc], &[sl], &node("node-a"), &config());
    let affinity: Vec<_> = rs
        .sets()
        .iter()
        .filter(|s| s.name.starts_with("affinity-"))
        .collect();
    assert_eq!(affinity.len(), 2);
    assert!(
        affinity.iter().all(|s| s.timeout_secs == Some(10800)),
        "default timeout"
    );
    let t = trace_detailed(&rs, &Packet::tcp(ip("10.244.1.9"), ip("10.96.0.50"), 80));
    assert_eq!(t.verdict.endpoints().len(), 2);
    let text = rs.to_nft();
    let lookup = text.find("ip saddr @affinity-").unwrap();
    let numgen = text.find("numgen random mod 2").unwrap();
    assert!(
        lookup < numgen,
        "affinity lookups precede the random choice"
    );
}

#[test]
fn render_is_independent_of_input_order() {
    let (mut svcs, mut slices) = web();
    let (s2, sl2) = edge("Local");
    svcs.extend(s2);
    slices.extend(sl2);
    let a = render(&svcs, &slices, &node("node-a"), &config()).to_nft();
    svcs.reverse();
    slices.reverse();
    let b = render(&svcs, &slices, &node("node-a"), &config()).to_nft();
    assert_eq!(a, b);
}

#[test]
fn random_endpoint_choice_is_uniform_over_ten_thousand_draws() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    let want = eps(&["10.244.1.5:8080", "10.244.2.7:8080", "10.244.2.8:8080"]);
    let mut counts = [0u32; 3];
    // xorshift32: the draws are fixed, so the verdict is too.
    let mut x: u32 = 2_463_534_242;
    let draws = 10_000;
    for _ in 0..draws {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let packet = Packet::tcp(ip("10.244.1.9"), ip("10.96.0.20"), 80).drawn(x);
        let got = trace(&rs, &packet).endpoints();
        assert_eq!(got.len(), 1, "one draw, one endpoint: {got:?}");
        counts[want.iter().position(|w| *w == got[0]).unwrap()] += 1;
    }
    let expected = f64::from(draws) / 3.0;
    let chi2: f64 = counts
        .iter()
        .map(|c| (f64::from(*c) - expected).powi(2) / expected)
        .sum();
    // Two degrees of freedom: 13.82 is the 0.1 % critical value (the draws are fixed).
    assert!(chi2 < 13.82, "chi-square {chi2:.2} for {counts:?}");
}
