//! The NetworkPolicy table over nfnetlink (`NftSocket::apply_policy`): a whole load, an
//! element-only update and a removal end in the kernel state `nft -f` of the same text gives;
//! the table reads back as the model it was loaded from (`NftSocket::read_policy`), and a
//! resync repairs a hand-edited table in place and sends nothing to an untouched one.

use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_policy::{
    compile, plan, Change, Cluster, ContainerPort, Namespace, Pod, Proto, Ruleset, SetKind, Update,
    TABLE,
};
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

/// What the kernel can hold of a table: per-pod chains without their direction, no node
/// addresses, chains and sets by name.
fn comparable(mut rs: Ruleset) -> Ruleset {
    rs.local_addrs.clear();
    rs.chains.iter_mut().for_each(|c| c.direction = None);
    rs.chains.sort_by(|a, b| a.name.cmp(&b.name));
    rs.sets.sort_by(|a, b| a.name.cmp(&b.name));
    rs
}

fn read(ns: &Netns) -> Ruleset {
    NftSocket::open_in(&ns.path())
        .and_then(|mut s| s.read_policy(TABLE))
        .unwrap_or_else(|e| panic!("read_policy: {e}"))
        .expect("a policy table")
}

#[test]
fn the_table_reads_back_as_the_model_it_was_loaded_from() {
    if !root() {
        return;
    }
    let c = cluster();
    let rs = compile(&c, NODE, &[]);
    let ns = Netns::new("prd");
    assert_eq!(
        NftSocket::open_in(&ns.path())
            .and_then(|mut s| s.read_policy(TABLE))
            .unwrap(),
        None
    );
    apply(&ns, Update::Load(rs.clone()));
    assert_eq!(comparable(read(&ns)), comparable(rs.clone()));
    // Loaded by nft itself from the text, it reads the same.
    let by_nft = Netns::new("prdn");
    nft_load(&by_nft, &rs.to_nft());
    assert_eq!(comparable(read(&by_nft)), comparable(rs.clone()));
    // After changes in place (adjacent addresses in one interval set, a policy gone).
    let mut c2 = c.clone();
    c2.set_pod(pod("x", "web", [10, 244, 1, 12], NODE));
    let mut web2 = pod("x", "web2", [10, 244, 1, 13], "node-2");
    web2.labels.insert("app".into(), "web".into());
    c2.set_pod(web2);
    c2.remove_policy("x", "web-egress");
    let new = compile(&c2, NODE, &[]);
    apply(&ns, plan(Some(&rs), &new).expect("a change"));
    assert_eq!(comparable(read(&ns)), comparable(new));
}

#[test]
fn a_resync_repairs_a_hand_edited_table_in_place_and_sends_nothing_to_an_untouched_one() {
    if !root() {
        return;
    }
    let rs = compile(&cluster(), NODE, &[]);
    let ns = Netns::new("prs");
    let mut sock = NftSocket::open_in(&ns.path()).unwrap();
    let sent = sock.resync_policy(&rs).unwrap();
    assert!(matches!(sent, Some(Update::Load(_))), "absent: {sent:?}");

    // Someone else commits in the namespace (as the proxy does): the table is read back,
    // found equal, and no transaction is sent.
    ns.exec(&["nft", "add", "table", "ip", "someone-else"]);
    let generation = sock.generation().unwrap();
    assert_eq!(sock.resync_policy(&rs).unwrap(), None);
    assert_eq!(
        sock.generation().unwrap(),
        generation,
        "a transaction was sent"
    );

    // A peer's address deleted from a set, and an accept-all put first in a pod's chain.
    let set = rs
        .sets
        .iter()
        .find(|s| s.kind == SetKind::Addr && !s.elements.is_empty())
        .unwrap();
    let element = set.elements.iter().next().unwrap().clone();
    ns.exec(&[
        "nft",
        "delete",
        "element",
        "ip",
        TABLE,
        &set.name,
        &format!("{{ {element} }}"),
    ]);
    let chain = rs.chains.iter().find(|c| c.hook.is_none()).unwrap();
    ns.exec(&["nft", "insert", "rule", "ip", TABLE, &chain.name, "accept"]);
    let Some(Update::Changes { changes, .. }) = sock.resync_policy(&rs).unwrap() else {
        panic!("not repaired in place");
    };
    let mut want = vec![
        Change::AddToSet {
            set: set.name.clone(),
            element,
        },
        Change::FlushChain(chain.name.clone()),
    ];
    want.extend(chain.rules.iter().map(|r| Change::AddRule {
        chain: chain.name.clone(),
        rule: r.clone(),
    }));
    assert_eq!(changes, want);
    assert_eq!(listing(&ns), nft_listing(&rs));
    let generation = sock.generation().unwrap();
    assert_eq!(sock.resync_policy(&rs).unwrap(), None, "repaired");
    assert_eq!(sock.generation().unwrap(), generation);

    // A rule kinet never writes: the table is replaced whole.
    ns.exec(&[
        "nft",
        "add",
        "rule",
        "ip",
        TABLE,
        &chain.name,
        "ip",
        "saddr",
        "192.0.2.1",
        "accept",
    ]);
    let sent = sock.resync_policy(&rs).unwrap();
    assert!(matches!(sent, Some(Update::Load(_))), "{sent:?}");
    assert_eq!(listing(&ns), nft_listing(&rs));
}
