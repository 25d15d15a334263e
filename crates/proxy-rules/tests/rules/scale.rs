//! 10,000 services x 10 endpoints: the ruleset is complete and a packet's
//! service lookup costs the same as with 10 services (one map lookup).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kinet_proxy_rules::{
    render, trace_detailed, Action, NodeInfo, Packet, ProxyConfig, Renderer, Ruleset, ServiceKey,
    ServiceObjects, RANDOM_MODULUS,
};

const ENDPOINTS: u32 = 10;

fn cluster_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i)
}

fn endpoint_ip(i: u32, j: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + 16 + i * ENDPOINTS + j)
}

/// Built from structs, not JSON, to keep the fixture itself fast.
fn cluster(n: u32) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut svcs = Vec::with_capacity(n as usize);
    let mut slices = Vec::with_capacity(n as usize);
    for i in 0..n {
        let name = format!("svc-{i}");
        svcs.push(Service {
            metadata: ObjectMeta {
                namespace: Some("bench".into()),
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip(i).to_string()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        });
        slices.push(EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("bench".into()),
                name: Some(format!("{name}-1")),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/service-name".to_string(),
                    name,
                )])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: (0..ENDPOINTS)
                .map(|j| Endpoint {
                    addresses: vec![endpoint_ip(i, j).to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        ..Default::default()
                    }),
                    node_name: Some(format!("node-{}", j % 3)),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        });
    }
    (svcs, slices)
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "node-0".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
        pod_cidr: None,
    }
}

fn build(n: u32) -> Ruleset {
    let (svcs, slices) = cluster(n);
    render(&svcs, &slices, &node(), &ProxyConfig::default())
}

/// `cluster(n)` as from the API: every object has a resourceVersion.
fn versioned(n: u32) -> (Vec<Service>, Vec<EndpointSlice>) {
    let (mut svcs, mut slices) = cluster(n);
    for m in svcs
        .iter_mut()
        .map(|s| &mut s.metadata)
        .chain(slices.iter_mut().map(|s| &mut s.metadata))
    {
        m.resource_version = Some("1".into());
    }
    (svcs, slices)
}

#[test]
fn one_changed_slice_among_ten_thousand_touches_only_its_service() {
    let (svcs, mut slices) = versioned(10_000);
    let mut renderer = Renderer::new(&node(), &ProxyConfig::default());
    assert!(
        renderer.sync(&svcs, &slices).update.is_none(),
        "first sync is full"
    );
    let unchanged = renderer.sync(&svcs, &slices);
    assert_eq!(unchanged.update.map(|u| u.changes.len()), Some(0));

    slices[5_000].endpoints.pop();
    slices[5_000].metadata.resource_version = Some("2".into());
    let start = std::time::Instant::now();
    let update = renderer.sync(&svcs, &slices).update.expect("incremental");
    let took = start.elapsed();
    let text = update.to_nft();
    // Only the service's endpoint group and the hairpin set change, by elements.
    let offset = renderer
        .ruleset()
        .chains_for("bench", "svc-5000")
        .iter()
        .flat_map(|c| &c.rules)
        .find_map(|r| match r.action {
            Action::DnatRandom { offset, .. } => Some(offset),
            _ => None,
        })
        .expect("a DNAT through the endpoints map");
    let in_group = |line: &str| {
        let element = line.starts_with("delete element ip kinet endpoints-tcp-")
            || line.starts_with("add element ip kinet endpoints-tcp-");
        let key = line.split_once("{ ").map(|(_, k)| k);
        let lo = key.and_then(|k| k.split('-').next()?.parse::<u32>().ok());
        element && lo.is_some_and(|lo| (offset..offset + RANDOM_MODULUS).contains(&lo))
    };
    assert!(
        text.lines()
            .all(|l| in_group(l) || l.contains(" element ip kinet hairpin ")),
        "{text}"
    );
    assert_eq!(
        text.matches("add element").count(),
        ENDPOINTS as usize - 1,
        "{text}"
    );
    println!("one changed slice of 10,000 Services: sync took {took:?}");
}

#[test]
fn a_sync_of_named_services_looks_only_at_them_and_agrees_with_a_whole_sync() {
    let (svcs, mut slices) = versioned(10_000);
    let config = ProxyConfig::default();
    let (mut named, mut whole) = (
        Renderer::new(&node(), &config),
        Renderer::new(&node(), &config),
    );
    named.sync(&svcs, &slices);
    whole.sync(&svcs, &slices);
    fn given<'a>(
        svcs: &'a [Service],
        slices: &'a [EndpointSlice],
        i: usize,
    ) -> (ServiceKey, Option<ServiceObjects<'a>>) {
        let own: Vec<&EndpointSlice> = slices.get(i).into_iter().collect();
        let key = ("bench".to_string(), format!("svc-{i}"));
        (key, svcs.get(i).map(|s| (s, own)))
    }

    // Named but unchanged: nothing rendered, nothing sent.
    let same = named.sync_services([given(&svcs, &slices, 7)]);
    assert_eq!(same.services, 0);
    assert_eq!(same.update.map(|u| u.changes.len()), Some(0));

    // One endpoint leaves service 5000: only it is rendered, and the update is the one a
    // sync over all 10,000 finds.
    slices[5_000].endpoints.pop();
    slices[5_000].metadata.resource_version = Some("2".into());
    let got = named.sync_services([given(&svcs, &slices, 5_000)]);
    let want = whole.sync(&svcs, &slices);
    assert_eq!((got.services, want.services), (1, 1));
    assert_eq!(got.update, want.update);

    // Service 9999 and its slice deleted.
    let (svcs, slices) = (&svcs[..9_999], &slices[..9_999]);
    let got = named.sync_services([given(svcs, slices, 9_999)]);
    let want = whole.sync(svcs, slices);
    assert_eq!(got.services, 1);
    assert_eq!(got.update, want.update);
    assert_eq!(named.ruleset().to_nft(), whole.ruleset().to_nft());
}

#[test]
fn ten_thousand_services_render_completely_and_lookup_cost_is_flat() {
    let small = build(10);
    let big = build(10_000);

    assert_eq!(big.map("service-ips").unwrap().elements.len(), 10_000);
    // Per service: one chain with a masquerade rule and a DNAT through its endpoint group.
    let skeleton_chains = small.chains().len() - 10;
    assert_eq!(big.chains().len(), skeleton_chains + 10_000);
    let skeleton_rules = small.rule_count() - 10 * 2;
    assert_eq!(big.rule_count(), skeleton_rules + 10_000 * 2);
    // No set or map per service: 64 services share an endpoints map.
    assert_eq!(big.sets().len(), small.sets().len());
    assert_eq!(big.maps().len(), small.maps().len() + 10_000 / 64);
    let endpoint_maps: Vec<usize> = (big.maps().iter())
        .filter(|m| m.name.starts_with("endpoints-tcp-"))
        .map(|m| m.elements.len())
        .collect();
    assert!(endpoint_maps.iter().all(|n| *n <= 64 * ENDPOINTS as usize));
    assert_eq!(
        endpoint_maps.iter().sum::<usize>(),
        10_000 * ENDPOINTS as usize
    );

    let client = Ipv4Addr::new(10, 244, 200, 1);
    let probe = |rs: &Ruleset, i: u32| trace_detailed(rs, &Packet::tcp(client, cluster_ip(i), 80));
    let base = probe(&small, 3);
    assert_eq!(base.verdict.endpoints().len(), ENDPOINTS as usize);
    for i in [0, 3, 5_000, 9_999] {
        let t = probe(&big, i);
        let want: Vec<_> = (0..ENDPOINTS)
            .map(|j| std::net::SocketAddrV4::new(endpoint_ip(i, j), 8080))
            .collect();
        assert_eq!(t.verdict.endpoints(), want, "service {i}");
        assert_eq!(t.rules_evaluated, base.rules_evaluated, "service {i}");
        assert_eq!(t.map_lookups, base.map_lookups, "service {i}");
    }
    // A non-service packet costs the same too.
    let miss = |rs: &Ruleset| {
        trace_detailed(rs, &Packet::tcp(client, Ipv4Addr::new(8, 8, 8, 8), 443)).rules_evaluated
    };
    assert_eq!(miss(&small), miss(&big));

    // The text form has one element line per service.
    let text = big.to_nft();
    assert_eq!(
        text.matches("add element ip kinet service-ips {").count(),
        10_000
    );
}
