//! Packets through the iptables chains, and the same packets through the nftables ruleset
//! of the same Services: both modes must give every packet the same fate.

use std::net::SocketAddrV4;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_iptables::{render, trace};
use kinet_proxy_rules::{DnatTarget, Origin, Packet, Verdict};

use crate::cases::*;
use crate::common::*;

fn to(s: &str, masquerade: bool) -> DnatTarget {
    DnatTarget {
        to: s.parse::<SocketAddrV4>().unwrap(),
        masquerade,
    }
}

/// Packets from a pod on node-a, from node-a itself, from a pod elsewhere and from
/// outside, to every address and port of the fixtures (and a pod directly).
fn packets() -> Vec<Packet> {
    let dests = [
        ("10.96.0.20", 80),
        ("10.96.0.30", 80),
        ("198.51.100.5", 80),
        ("203.0.113.10", 80),
        ("192.168.0.2", 30080),
        ("192.168.0.3", 30080),
        ("192.168.0.4", 30080),
        ("192.168.0.2", 30081),
        ("10.96.0.50", 80),
        ("10.96.0.60", 80),
        ("198.51.100.6", 80),
        ("203.0.113.60", 80),
        ("192.168.0.2", 30060),
        ("10.96.0.80", 80),
        ("10.96.0.81", 80),
        ("10.244.2.7", 8080),
        ("203.0.113.70", 80),
        ("10.96.0.70", 80),
        ("192.168.0.2", 30070),
    ];
    let mut out = Vec::new();
    let mut add = |packet: fn(_, _, _) -> Packet, dst, port| {
        for src in ["10.244.1.9", "10.244.1.5", "10.244.3.4", "172.16.0.50"] {
            out.push(packet(ip(src), ip(dst), port));
        }
        out.push(packet(ip("192.168.0.2"), ip(dst), port).from_host());
    };
    for (dst, port) in dests {
        add(Packet::tcp, dst, port);
    }
    add(Packet::udp, "10.96.0.10", 53);
    out
}

/// Every fixture in one cluster (the nftables mode drops traffic to unallocated
/// ClusterIPs, so the packets' addresses must all be allocated), with either
/// externalTrafficPolicy for `default/edge`.
fn cluster(policy: &str) -> (Vec<Service>, Vec<EndpointSlice>) {
    let (mut svcs, mut slices) = (Vec::new(), Vec::new());
    for (s, e) in [
        web(),
        edge(policy),
        sticky(),
        empty(),
        tutorial(),
        guarded(),
    ] {
        svcs.extend(s);
        slices.extend(e);
    }
    (svcs, slices)
}

/// kube-proxy's iptables mode filters external destinations in INPUT and FORWARD only
/// (`iptablesJumpChains`), so the node's own connections to an external or load-balancer
/// address without usable endpoints leave unfiltered, where the nftables mode refuses them.
fn host_to_external(p: &Packet, iptables: &Verdict) -> bool {
    let services: kinet_proxy_rules::Ipv4Cidr = config().service_cidr.parse().unwrap();
    p.origin == Origin::Host && !services.contains(p.dst) && *iptables == Verdict::Accept
}

#[test]
fn both_modes_agree_on_every_packet() {
    let mut differ = Vec::new();
    for node_name in ["node-a", "node-b", "node-c"] {
        for name in ["Cluster", "Local"] {
            let (svcs, slices) = cluster(name);
            let n = node(node_name);
            let ipt = render(&svcs, &slices, &n, &config());
            let nft = kinet_proxy_rules::render(&svcs, &slices, &n, &config());
            for p in packets() {
                let (a, b) = (trace(&ipt, &p), kinet_proxy_rules::trace(&nft, &p));
                if a != b && !host_to_external(&p, &a) {
                    differ.push(format!(
                        "{name} on {node_name}: {p:?}: iptables {a:?}, nftables {b:?}"
                    ));
                }
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn clusterip_picks_among_ready_endpoints_without_snat() {
    let (svcs, slices) = web();
    let t = render(&svcs, &slices, &node("node-a"), &config());
    assert_eq!(
        trace(&t, &Packet::tcp(ip("10.244.1.9"), ip("10.96.0.20"), 80)),
        Verdict::Dnat(vec![
            to("10.244.1.5:8080", false),
            to("10.244.2.7:8080", false),
            to("10.244.2.8:8080", false),
        ])
    );
    // Hairpin: the endpoint reaching itself is masqueraded on that branch.
    let Verdict::Dnat(hairpin) = trace(&t, &Packet::tcp(ip("10.244.1.5"), ip("10.96.0.20"), 80))
    else {
        panic!("not DNATed")
    };
    assert!(hairpin.contains(&to("10.244.1.5:8080", true)));
    assert!(hairpin.contains(&to("10.244.2.7:8080", false)));
}

#[test]
fn local_policy_keeps_the_source_and_uses_local_endpoints() {
    let (svcs, slices) = edge("Local");
    let outside = ip("172.16.0.50");
    let on_a = render(&svcs, &slices, &node("node-a"), &config());
    for (dst, port) in [
        ("192.168.0.2", 30080),
        ("203.0.113.10", 80),
        ("198.51.100.5", 80),
    ] {
        assert_eq!(
            trace(&on_a, &Packet::tcp(outside, ip(dst), port)),
            Verdict::Dnat(vec![to("10.244.1.5:8080", false)]),
            "{dst}:{port}"
        );
    }
    // node-c has no local endpoint: outside traffic is dropped, pod traffic still served.
    let on_c = render(&svcs, &slices, &node("node-c"), &config());
    assert_eq!(
        trace(&on_c, &Packet::tcp(outside, ip("203.0.113.10"), 80)),
        Verdict::Drop
    );
    // The node's own traffic is masqueraded and may use any endpoint.
    assert_eq!(
        trace(
            &on_c,
            &Packet::tcp(ip("192.168.0.4"), ip("203.0.113.10"), 80).from_host()
        ),
        Verdict::Dnat(vec![
            to("10.244.1.5:8080", true),
            to("10.244.2.7:8080", true)
        ])
    );
    assert_eq!(
        trace(
            &on_c,
            &Packet::tcp(ip("10.244.3.4"), ip("203.0.113.10"), 80)
        )
        .endpoints(),
        vec![
            "10.244.1.5:8080".parse().unwrap(),
            "10.244.2.7:8080".parse().unwrap()
        ]
    );
}

#[test]
fn load_balancer_source_ranges_pass_through_kube_fw_or_are_dropped_by_the_firewall() {
    let (svcs, slices) = guarded();
    let t = render(&svcs, &slices, &node("node-c"), &config());
    let lb = |src: &str| Packet::tcp(ip(src), ip("203.0.113.70"), 80);
    assert_eq!(
        trace(&t, &lb("172.16.0.50")),
        Verdict::Dnat(vec![
            to("10.244.1.5:8080", true),
            to("10.244.2.7:8080", true)
        ])
    );
    // Not DNATed by KUBE-FW-, so still addressed to the load balancer: KUBE-PROXY-FIREWALL.
    assert_eq!(trace(&t, &lb("172.16.1.50")), Verdict::Drop);
    let fw = &t.filter["KUBE-PROXY-FIREWALL"];
    assert_eq!(fw.len(), 1);
    let kube_fw = t.nat.keys().find(|c| c.starts_with("KUBE-FW-")).unwrap();
    assert!(
        fw[0]
            .args()
            .contains(&format!("traffic not accepted by {kube_fw}")),
        "{}",
        fw[0].args()
    );
}

#[test]
fn no_endpoints_is_refused_everywhere() {
    let (svcs, slices) = empty();
    let t = render(&svcs, &slices, &node("node-a"), &config());
    for p in [
        Packet::tcp(ip("10.244.1.9"), ip("10.96.0.60"), 80),
        Packet::tcp(ip("192.168.0.2"), ip("10.96.0.60"), 80).from_host(),
        Packet::tcp(ip("172.16.0.50"), ip("198.51.100.6"), 80),
        Packet::tcp(ip("172.16.0.50"), ip("203.0.113.60"), 80),
        Packet::tcp(ip("172.16.0.50"), ip("192.168.0.2"), 30060),
    ] {
        assert_eq!(trace(&t, &p), Verdict::Reject, "{p:?}");
    }
}

#[test]
fn unserved_ports_of_a_cluster_ip_pass_as_in_kube_proxys_iptables_mode() {
    // kube-proxy's nftables mode rejects them; its iptables mode has no rule for them.
    let (svcs, slices) = web();
    let n = node("node-a");
    let ipt = render(&svcs, &slices, &n, &config());
    let nft = kinet_proxy_rules::render(&svcs, &slices, &n, &config());
    for p in [
        Packet::tcp(ip("10.244.1.9"), ip("10.96.0.20"), 81),
        Packet::udp(ip("10.244.1.9"), ip("10.96.0.20"), 80),
    ] {
        assert_eq!(trace(&ipt, &p), Verdict::Accept);
        assert_eq!(kinet_proxy_rules::trace(&nft, &p), Verdict::Reject);
    }
}
