use super::*;

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const MAC2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
const MAC3: Mac = Mac([0x02, 0, 0, 0, 0, 3]);

fn node(backend: Backend) -> NodeNetwork {
    let mut n = NodeNetwork::new(cidr("10.244.1.0/24"), ip("172.18.0.2"), 1500, backend);
    n.peers = vec![
        Peer {
            node: "w2".into(),
            pod_cidr: cidr("10.244.2.0/24"),
            underlay_ip: ip("172.18.0.3"),
            vtep_mac: Some(MAC2),
        },
        Peer {
            node: "w3".into(),
            pod_cidr: cidr("10.244.3.0/24"),
            underlay_ip: ip("172.18.0.4"),
            vtep_mac: Some(MAC3),
        },
    ];
    n
}

#[test]
fn addresses_and_mtus_follow_flannel() {
    let n = node(Backend::Vxlan);
    assert_eq!(n.bridge_ip, ip("10.244.1.1"));
    assert_eq!(vtep_ip(n.pod_cidr), ip("10.244.1.0"));
    // Full frames on the node; the overlay's header taken off the way out only.
    assert_eq!(n.pod_mtu(), 1500);
    assert_eq!(n.pod_route_mtu(), Some(1450));
    assert_eq!(node(Backend::HostGw).pod_mtu(), 1500);
    assert_eq!(node(Backend::HostGw).pod_route_mtu(), None);
    assert_eq!(vxlan_mtu(9000), 8950);
}

#[test]
fn vxlan_wants_onlink_route_neigh_and_fdb_per_peer() {
    let d = node(Backend::Vxlan).desired().unwrap();
    let routes: Vec<_> = d.routes.iter().collect();
    assert_eq!(
        routes,
        vec![
            &Route {
                dst: cidr("10.244.2.0/24"),
                via: ip("10.244.2.0"),
                dev: "flannel.1".into(),
                onlink: true
            },
            &Route {
                dst: cidr("10.244.3.0/24"),
                via: ip("10.244.3.0"),
                dev: "flannel.1".into(),
                onlink: true
            },
        ]
    );
    assert!(d.neighs.contains(&Neigh {
        ip: ip("10.244.2.0"),
        mac: MAC2
    }));
    assert!(d.neighs.contains(&Neigh {
        ip: ip("10.244.3.0"),
        mac: MAC3
    }));
    assert!(d.fdb.contains(&Fdb {
        mac: MAC2,
        dst: ip("172.18.0.3")
    }));
    assert!(d.fdb.contains(&Fdb {
        mac: MAC3,
        dst: ip("172.18.0.4")
    }));
    assert_eq!((d.neighs.len(), d.fdb.len()), (2, 2));
}

#[test]
fn host_gw_wants_plain_routes_via_underlay() {
    let d = node(Backend::HostGw).desired().unwrap();
    assert!(d.neighs.is_empty() && d.fdb.is_empty());
    assert!(d.routes.contains(&Route {
        dst: cidr("10.244.3.0/24"),
        via: ip("172.18.0.4"),
        dev: "eth0".into(),
        onlink: false
    }));
    assert_eq!(d.routes.len(), 2);
}

#[test]
fn bad_peers_are_refused() {
    let mut n = node(Backend::Vxlan);
    n.peers[0].vtep_mac = None;
    assert_eq!(n.desired(), Err(PeerError::NoVtepMac("w2".into())));
    // host-gw does not need the MAC.
    n.backend = Backend::HostGw;
    assert!(n.desired().is_ok());

    let mut n = node(Backend::HostGw);
    n.peers[1].pod_cidr = cidr("10.244.1.0/25");
    assert!(matches!(n.desired(), Err(PeerError::OverlapsSelf(..))));
    let mut n = node(Backend::HostGw);
    n.peers[1].pod_cidr = cidr("10.244.0.0/22");
    assert!(matches!(n.desired(), Err(PeerError::OverlapsSelf(..))));
    let mut n = node(Backend::HostGw);
    n.peers[1].pod_cidr = cidr("10.244.2.128/25");
    assert!(matches!(n.desired(), Err(PeerError::Overlap(..))));
}

#[test]
fn plan_adds_missing_and_removes_stale() {
    let want = node(Backend::Vxlan).desired().unwrap();
    assert!(plan(&want, &want).is_empty());

    // The node knows w2 with an old MAC and a node w9 that left; w3 is missing.
    let old = Mac([0x02, 0, 0, 0, 0, 0x22]);
    let mut have = Desired::default();
    have.routes
        .insert(want.routes.iter().next().unwrap().clone());
    have.routes.insert(Route {
        dst: cidr("10.244.9.0/24"),
        via: ip("10.244.9.0"),
        dev: "flannel.1".into(),
        onlink: true,
    });
    have.neighs.insert(Neigh {
        ip: ip("10.244.2.0"),
        mac: old,
    });
    have.fdb.insert(Fdb {
        mac: old,
        dst: ip("172.18.0.3"),
    });

    let p = plan(&have, &want);
    assert_eq!(p.add.routes.len(), 1);
    assert_eq!(
        p.add.routes.iter().next().unwrap().dst,
        cidr("10.244.3.0/24")
    );
    assert_eq!(p.add.neighs, want.neighs);
    assert_eq!(p.add.fdb, want.fdb);
    assert_eq!(
        p.remove.routes.iter().next().unwrap().dst,
        cidr("10.244.9.0/24")
    );
    assert_eq!(p.remove.neighs.iter().next().unwrap().mac, old);
    assert_eq!(p.remove.fdb.iter().next().unwrap().mac, old);
}

#[test]
fn host_veth_names_are_stable_short_and_distinct() {
    let a = host_veth_name("kinet-demo-w1-default-web-1");
    assert_eq!(a, host_veth_name("kinet-demo-w1-default-web-1"));
    assert_ne!(a, host_veth_name("kinet-demo-w1-default-web-2"));
    assert!(a.starts_with("veth") && a.len() == 12 && a.len() <= 15);
    // FNV-1a of the empty string is the offset basis.
    assert_eq!(host_veth_name(""), "veth811c9dc5");
}

#[test]
fn macs_print_like_iproute2() {
    assert_eq!(
        Mac([0xde, 0xad, 0xbe, 0xef, 0, 1]).to_string(),
        "de:ad:be:ef:00:01"
    );
    assert_eq!(Mac::from_slice(&[1, 2, 3]), None);
}
