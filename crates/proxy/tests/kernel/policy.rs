//! The NetworkPolicy table over nfnetlink (`NftSocket::apply_policy`): a whole load, an
//! element-only update and a removal end in the kernel state `nft -f` of the same text gives.

use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_policy::{compile, plan, Cluster, ContainerPort, Namespace, Pod, Proto, Ruleset, Update};
use kinet_proxy::netlink::NftSocket;
use serde_json::json;

use crate::netlink::nft_load;
use crate::support::{root, sorted_lines, Netns};

const NODE: &str = "node-1";

fn pod(ns: &str, name: &str, ip: [u8; 4], node: &str) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: [("app".to_string(), name.to_string())].into(),
        ip: Ipv4Addr::from(ip),
        node: node.into(),
        ports: vec![ContainerPort {
            name: "http".into(),
            port: 8080,
            proto: Proto::Tcp,
        }],
    }
}

/// Pods on two nodes, and policies using every kind of set: peers with ipBlock and except,
/// numeric ports with a range, named ports, ingress and egress.
fn cluster() -> Cluster {
    let mut c = Cluster::new();
    for ns in ["x", "y"] {
        c.set_namespace(Namespace {
            name: ns.into(),
            labels: [("kubernetes.io/metadata.name".to_string(), ns.to_string())].into(),
        });
    }
    c.set_pod(pod("x", "web", [10, 244, 1, 10], NODE));
    c.set_pod(pod("x", "db", [10, 244, 1, 11], NODE));
    c.set_pod(pod("y", "client", [10, 244, 2, 10], "node-2"));
    let np = |name: &str, spec: serde_json::Value| -> NetworkPolicy {
        serde_json::from_value(json!({"metadata": {"namespace": "x", "name": name}, "spec": spec}))
            .unwrap()
    };
    c.set_policy(&np(
        "db-from-web",
        json!({"podSelector": {"matchLabels": {"app": "db"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                                     {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                            "ports": [{"port": 5432}, {"protocol": "UDP", "port": 9000, "endPort": 9100}, {"port": "http"}]}]}),
    ))
    .unwrap();
    c.set_policy(&np(
        "web-egress",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {}}]}, {"ports": [{"protocol": "UDP", "port": 53}]}]}),
    ))
    .unwrap();
    c
}

fn listing(ns: &Netns) -> Vec<String> {
    sorted_lines(&ns.exec(&["nft", "list", "table", "ip", "kinet-policy"]))
}

fn apply(ns: &Netns, update: Update) {
    NftSocket::open_in(&ns.path())
        .and_then(|mut s| s.apply_policy(&update))
        .unwrap_or_else(|e| panic!("apply_policy: {e}"));
}

/// The listing after `nft -f` of `rs` in a namespace of its own.
fn nft_listing(rs: &Ruleset) -> Vec<String> {
    let ns = Netns::new("pnft");
    nft_load(&ns, &rs.to_nft());
    listing(&ns)
}

#[test]
fn a_whole_policy_table_loads_as_nft_loads_it() {
    if !root() {
        return;
    }
    let rs = compile(&cluster(), NODE, &[]);
    let ns = Netns::new("pol");
    apply(&ns, Update::Load(rs.clone()));
    assert_eq!(listing(&ns), nft_listing(&rs));
    let counters = NftSocket::open_in(&ns.path())
        .and_then(|mut s| s.counters(&rs.table))
        .unwrap();
    let names: Vec<&str> = counters.iter().map(|c| c.0.as_str()).collect();
    let want: Vec<&str> = rs.counters.iter().map(String::as_str).collect();
    assert_eq!(names, want);
    assert!(
        counters.iter().all(|c| (c.1, c.2) == (0, 0)),
        "{counters:?}"
    );
    // Loading again replaces the table in one transaction.
    apply(&ns, Update::Load(rs.clone()));
    assert_eq!(listing(&ns), nft_listing(&rs));
}

#[test]
fn changes_in_place_reach_the_desired_table_and_removal_leaves_none() {
    if !root() {
        return;
    }
    let mut c = cluster();
    let old = compile(&c, NODE, &[]);
    // A new web pod (a peer of db and isolated for egress), one gone, one relabelled.
    c.set_pod(pod("x", "web", [10, 244, 1, 12], NODE));
    let mut client = pod("y", "client", [10, 244, 2, 10], "node-2");
    client.labels.insert("app".into(), "web".into());
    c.set_pod(client);
    let new = compile(&c, NODE, &[]);
    let update = plan(Some(&old), &new).expect("a change");
    assert!(matches!(update, Update::Changes { .. }), "{update:?}");
    let ns = Netns::new("pol");
    apply(&ns, Update::Load(old));
    apply(&ns, update);
    assert_eq!(listing(&ns), nft_listing(&new));

    // A policy deleted and another created: their objects go and come in place.
    let mut c2 = c.clone();
    c2.remove_policy("x", "web-egress");
    c2.set_policy(&serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": "web-from-y"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}
    }))
    .unwrap())
    .unwrap();
    let newer = compile(&c2, NODE, &[]);
    let update = plan(Some(&new), &newer).expect("a change");
    assert!(matches!(update, Update::Changes { .. }), "{update:?}");
    apply(&ns, update);
    assert_eq!(listing(&ns), nft_listing(&newer));
    // And back.
    apply(&ns, plan(Some(&newer), &new).expect("a change"));
    assert_eq!(listing(&ns), nft_listing(&new));

    apply(&ns, Update::Delete(new.table.clone()));
    let tables = ns.exec(&["nft", "list", "tables"]);
    assert!(!tables.contains("kinet-policy"), "{tables}");
    // Removing what is not there is not an error.
    apply(&ns, Update::Delete(new.table));
}
