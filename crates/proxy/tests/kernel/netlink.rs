//! Loads and updates sent over nfnetlink (`kinet_proxy::netlink`) end in the same kernel
//! state as `nft -f` loads, a table read back is the model it was loaded from, and a
//! refused update changes nothing.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::netlink::{loaded_forms, NetlinkError, NftSocket};
use kinet_proxy_rules::{render, Action, Change, Rule, Ruleset, Update};
use serde_json::json;
use serde_json::Value;

use crate::objects::{config, node, service, slice, steps, sticky_nodeport};
use crate::support::{root, sorted_lines, Netns};

static FILES: AtomicUsize = AtomicUsize::new(0);

/// Loads `text` with `nft -f` inside `ns`.
pub(crate) fn nft_load(ns: &Netns, text: &str) {
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("kinet-nl-{}-{n}.nft", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "nft -f: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The update that turns a kernel holding `old` into `new`.
fn diff(new: &Ruleset, old: &Ruleset) -> Update {
    new.repair(Some(&old.as_loaded(loaded_forms)), loaded_forms)
}

fn listing(ns: &Netns) -> Vec<String> {
    sorted_lines(&ns.exec(&["nft", "list", "table", "ip", "kinet"]))
}

/// Asserts two sorted listings are equal, printing only the lines that differ.
fn assert_same(netlink: &[String], full: &[String], what: &str) {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|l| !b.contains(l)).cloned().collect()
    };
    assert!(
        netlink == full,
        "{what}: listings differ\nonly after netlink: {:#?}\nonly after nft: {:#?}",
        only(netlink, full),
        only(full, netlink)
    );
}

#[test]
fn netlink_updates_reach_the_same_state_as_full_loads() {
    if !root() {
        return;
    }
    let nl_ns = Netns::new("nl");
    let full_ns = Netns::new("nlfull");
    let mut sock = NftSocket::open_in(&nl_ns.path()).unwrap();

    let steps = steps();
    let mut loaded: Option<Ruleset> = None;
    for (i, (svcs, slices)) in steps.iter().enumerate() {
        let rs = render(svcs, slices, &node(), &config());
        // The first load is the whole table, over netlink too.
        let update = match &loaded {
            None => rs.repair(None, loaded_forms),
            Some(old) => diff(&rs, old),
        };
        assert!(!update.is_empty(), "step {i}: empty update");
        assert!(
            !update.changes.contains(&Change::DeleteTable),
            "step {i}: the table is replaced"
        );
        sock.apply(&update)
            .unwrap_or_else(|e| panic!("step {i}: {e}\n{}", update.to_nft()));
        nft_load(&full_ns, &rs.to_nft());
        assert_same(&listing(&nl_ns), &listing(&full_ns), &format!("step {i}"));
        loaded = Some(rs);
    }
}

#[test]
fn a_refused_update_names_its_line_and_changes_nothing() {
    if !root() {
        return;
    }
    let ns = Netns::new("nlbad");
    let web = service("default", "web", Some("10.96.0.20"), 80);
    let rs = render(
        &[web],
        &[slice("default", "web", &["10.244.1.5"], 8080, "TCP")],
        &node(),
        &config(),
    );
    nft_load(&ns, &rs.to_nft());
    let before = listing(&ns);
    let update = Update {
        table: "kinet".into(),
        changes: vec![
            Change::AddChain("fresh".into()),
            Change::AddSetElement {
                set: "cluster-ips".into(),
                key: kinet_proxy_rules::SetKey::Addr,
                addr: Ipv4Addr::new(10, 96, 0, 99),
            },
            Change::AddRule {
                chain: "no-such-chain".into(),
                rule: Rule::always(Action::Accept),
            },
        ],
    };
    let mut sock = NftSocket::open_in(&ns.path()).unwrap();
    let err = sock.apply(&update).unwrap_err();
    assert!(matches!(err, NetlinkError::Rejected { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("add rule ip kinet no-such-chain accept: No such file or directory"),
        "{msg}"
    );
    assert_same(
        &listing(&ns),
        &before,
        "a refused batch must change nothing",
    );

    // The socket stays usable: the same changes without the bad rule go through.
    let good = Update {
        table: "kinet".into(),
        changes: update.changes[..2].to_vec(),
    };
    sock.apply(&good).unwrap();
    let after = listing(&ns);
    assert!(after.iter().any(|l| l == "chain fresh {"), "{after:?}");
    assert_ne!(after, before);
}

/// `n` ClusterIP services with ten endpoints each (the `scale` test's shape, smaller), but
/// for `changed`: (service, how many of its endpoints remain).
fn cluster(n: u32, changed: Option<(u32, u32)>) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut svcs = Vec::new();
    let mut slices = Vec::new();
    for i in 0..n {
        let name = format!("svc-{i}");
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i);
        svcs.push(service("bench", &name, Some(&ip.to_string()), 80));
        let eps: Vec<String> = (0..10)
            .filter(|j| changed.is_none_or(|(of, keep)| of != i || *j < keep))
            .map(|j| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 16)) + i * 10 + j))
            .map(|a| a.to_string())
            .collect();
        let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
        slices.push(slice("bench", &name, &eps, 8080, "TCP"));
    }
    (svcs, slices)
}

#[test]
fn one_endpoint_change_among_hundreds_lists_the_same_as_nft() {
    if !root() {
        return;
    }
    // Timings are `kinet bench proxy`'s job; this checks the result at some scale.
    let n = 300;
    let nl_ns = Netns::new("nlmany");
    let nft_ns = Netns::new("nftmany");
    let (svcs, slices) = cluster(n, None);
    let old = render(&svcs, &slices, &node(), &config());
    nft_load(&nl_ns, &old.to_nft());
    nft_load(&nft_ns, &old.to_nft());

    let (svcs, slices) = cluster(n, Some((n / 2, 9)));
    let new = render(&svcs, &slices, &node(), &config());
    let update = diff(&new, &old);
    let mut sock = NftSocket::open_in(&nl_ns.path()).unwrap();
    sock.apply(&update).unwrap();
    nft_load(&nft_ns, &update.to_nft());
    assert_same(&listing(&nl_ns), &listing(&nft_ns), "endpoint change");
}

#[test]
fn a_large_update_gets_all_its_acks() {
    if !root() {
        return;
    }
    // Every service vanishing: thousands of messages, each acknowledged.
    let nl_ns = Netns::new("nlbig");
    let full_ns = Netns::new("nlbigfull");
    let (svcs, slices) = cluster(300, None);
    let old = render(&svcs, &slices, &node(), &config());
    nft_load(&nl_ns, &old.to_nft());
    let new = render(&svcs[..1], &slices[..1], &node(), &config());
    let update = diff(&new, &old);
    assert!(update.changes.len() > 4000, "{}", update.changes.len());
    let mut sock = NftSocket::open_in(&nl_ns.path()).unwrap();
    sock.apply(&update).unwrap();
    nft_load(&full_ns, &new.to_nft());
    assert_same(&listing(&nl_ns), &listing(&full_ns), "large update");
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Every kind of rule the renderer writes: a LoadBalancer with
/// `externalTrafficPolicy: Local` and an external IP, affinity, a NodePort, UDP and
/// SCTP ports, a service without endpoints.
fn everything() -> Ruleset {
    let edge: Service = from_json(json!({
        "metadata": {"namespace": "default", "name": "edge"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.30",
                 "externalIPs": ["198.51.100.5"], "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}},
    }));
    let edge_eps: EndpointSlice = from_json(json!({
        "metadata": {"namespace": "default", "name": "edge-1",
                     "labels": {"kubernetes.io/service-name": "edge"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "nodeName": "node-a", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.7"], "nodeName": "node-b", "conditions": {"ready": true}},
        ],
    }));
    let multi: Service = from_json(json!({
        "metadata": {"namespace": "default", "name": "multi"},
        "spec": {"clusterIP": "10.96.0.40", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "ctl", "port": 7000, "protocol": "SCTP"}]},
    }));
    let multi_eps: EndpointSlice = from_json(json!({
        "metadata": {"namespace": "default", "name": "multi-1",
                     "labels": {"kubernetes.io/service-name": "multi"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                  {"name": "ctl", "port": 7001, "protocol": "SCTP"}],
        "endpoints": [{"addresses": ["10.244.1.20"], "nodeName": "node-a",
                       "conditions": {"ready": true}}],
    }));
    let svcs = vec![
        edge,
        multi,
        sticky_nodeport("api", "10.96.0.21", 30081),
        service("default", "lonely", Some("10.96.0.22"), 80),
    ];
    let slices = vec![
        edge_eps,
        multi_eps,
        slice("default", "api", &["10.244.1.7", "10.244.1.8"], 9090, "TCP"),
    ];
    render(&svcs, &slices, &node(), &config())
}

#[test]
fn every_rule_and_element_reloaded_over_netlink_lists_the_same() {
    if !root() {
        return;
    }
    let nl_ns = Netns::new("nlall");
    let full_ns = Netns::new("nlallfull");
    let rs = everything();
    nft_load(&nl_ns, &rs.to_nft());
    nft_load(&full_ns, &rs.to_nft());
    // Flush and refill every chain, delete and re-add every element, in one batch.
    let mut changes = Vec::new();
    for c in rs.chains() {
        changes.push(Change::FlushChain(c.name.clone()));
        changes.extend(c.rules.iter().map(|r| Change::AddRule {
            chain: c.name.clone(),
            rule: r.clone(),
        }));
    }
    for s in rs.sets() {
        for addr in &s.elements {
            changes.push(Change::DeleteSetElement {
                set: s.name.clone(),
                key: s.key,
                addr: *addr,
            });
            changes.push(Change::AddSetElement {
                set: s.name.clone(),
                key: s.key,
                addr: *addr,
            });
        }
    }
    for m in rs.maps() {
        for (key, entry) in &m.elements {
            changes.push(Change::DeleteMapElement {
                map: m.name.clone(),
                key: *key,
            });
            changes.push(Change::AddMapElement {
                map: m.name.clone(),
                key: *key,
                entry: entry.clone(),
            });
        }
    }
    let update = Update {
        table: rs.table().to_string(),
        changes,
    };
    let text = update.to_nft();
    for needle in [
        "fib saddr type local",
        "sctp",
        "udp",
        "update @",
        "masquerade",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
    let mut sock = NftSocket::open_in(&nl_ns.path()).unwrap();
    sock.apply(&update).unwrap();
    assert_same(&listing(&nl_ns), &listing(&full_ns), "reload");
}

#[test]
fn a_whole_table_loaded_over_netlink_lists_the_same_and_reads_back_as_its_model() {
    if !root() {
        return;
    }
    let nl_ns = Netns::new("nlwhole");
    let nft_ns = Netns::new("nlwholenft");
    let rs = everything();
    let mut sock = NftSocket::open_in(&nl_ns.path()).unwrap();
    assert_eq!(sock.read_table("kinet").unwrap(), None, "no table yet");
    sock.apply(&rs.repair(None, loaded_forms)).unwrap();
    nft_load(&nft_ns, &rs.to_nft());
    assert_same(&listing(&nl_ns), &listing(&nft_ns), "whole table");

    // Read back from the kernel: the model it was loaded from, whoever loaded it.
    let want = rs.as_loaded(loaded_forms);
    for (ns, who) in [(&nl_ns, "netlink"), (&nft_ns, "nft")] {
        let got = NftSocket::open_in(&ns.path())
            .unwrap()
            .read_table("kinet")
            .unwrap()
            .expect("the table");
        assert_eq!(got.sets, want.sets, "{who}: sets");
        assert_eq!(got.maps, want.maps, "{who}: maps");
        assert_eq!(got.chains.len(), want.chains.len(), "{who}: chains");
        for (g, w) in got.chains.iter().zip(&want.chains) {
            assert_eq!((&g.name, &g.base), (&w.name, &w.base), "{who}");
            assert!(
                g.rules == w.rules,
                "{who}: rules of chain {} differ",
                w.name
            );
        }
        // So repairing it needs nothing.
        assert_eq!(rs.repair(Some(&got), loaded_forms).changes, []);
    }
}

#[test]
fn another_owners_table_loads_like_nft() {
    if !root() {
        return;
    }
    use kinet_proxy::Applier;
    // The agent's pod network table: no comment, priorities by name, `daddr !=`, `notrack`.
    let mut rs = kinet_proxy_rules::pod_masquerade("podnet", "10.244.0.0/16".parse().unwrap());
    kinet_proxy_rules::untrack_overlay(&mut rs, "172.18.0.2".parse().unwrap(), 8472);
    let nl_ns = Netns::new("own");
    let nft_ns = Netns::new("ownnft");
    let mut applier = Applier::new(nl_ns.path(), "podnet");
    applier.reconcile(&rs).unwrap();
    nft_load(&nft_ns, &rs.to_nft());
    let list = |ns: &Netns| sorted_lines(&ns.exec(&["nft", "list", "table", "ip", "podnet"]));
    assert_same(&list(&nl_ns), &list(&nft_ns), "masquerade table");
    let again = applier.reconcile(&rs).unwrap();
    assert!(
        matches!(again, kinet_proxy::ApplyOutcome::Applied { changes: 0, .. }),
        "{again:?}"
    );
}

#[test]
fn endpoint_changes_among_ten_thousand_services_are_element_only() {
    if !root() {
        return;
    }
    let ns = Netns::new("nl10k");
    let (svcs, slices) = cluster(10_000, None);
    let mut renderer = kinet_proxy_rules::Renderer::new(&node(), &config());
    assert!(renderer.sync(&svcs, &slices).update.is_none());
    let mut sock = NftSocket::open_in(&ns.path()).unwrap();
    sock.apply(&renderer.ruleset().repair(None, loaded_forms))
        .unwrap();
    let terse = |ns: &Netns| ns.exec(&["nft", "-t", "list", "table", "ip", "kinet"]);
    let before_terse = terse(&ns);

    // The endpoints map service 5000 is in (64 Services share one).
    let endpoints = renderer
        .ruleset()
        .chains_for("bench", "svc-5000")
        .iter()
        .flat_map(|c| &c.rules)
        .find_map(|r| match &r.action {
            Action::DnatRandom { map, .. } => Some(map.clone()),
            _ => None,
        })
        .expect("a DNAT through an endpoints map");
    // One endpoint leaves; then the Service scales to 0, to 1, and back to 0.
    for (step, keep) in [9, 0, 1, 0].into_iter().enumerate() {
        let before = listing(&ns);
        let (svcs, slices) = cluster(10_000, Some((5_000, keep)));
        let update = renderer.sync(&svcs, &slices).update.expect("incremental");
        // Elements of its endpoints map (and, at 0, the no-endpoints verdict) and of the
        // hairpin set: no per-Service set or map, no rule.
        assert!(
            update.changes.iter().all(|c| match c {
                Change::AddMapElement { map, .. } | Change::DeleteMapElement { map, .. } =>
                    map == &endpoints || map == "no-endpoint-services",
                Change::AddSetElement { set, .. } | Change::DeleteSetElement { set, .. } =>
                    set == "hairpin",
                _ => false,
            }),
            "step {step}: {}",
            update.to_nft()
        );
        sock.apply(&update).unwrap();
        // The kernel took it, and only elements differ: chains, rules and definitions agree.
        assert_eq!(terse(&ns), before_terse, "step {step}");
        assert_ne!(listing(&ns), before, "step {step}");
    }
    let full_ns = Netns::new("nl10kfull");
    nft_load(&full_ns, &renderer.ruleset().to_nft());
    assert_same(
        &listing(&ns),
        &listing(&full_ns),
        "element-only changes at 10k",
    );
}

/// The sets and maps `nft` lists in the namespace's kinet table.
fn sets_and_maps(ns: &Netns) -> usize {
    let listing = ns.exec(&["nft", "-t", "list", "table", "ip", "kinet"]);
    (listing.lines().map(str::trim))
        .filter(|l| l.starts_with("set ") || l.starts_with("map "))
        .count()
}

#[test]
fn sixty_four_services_share_an_endpoints_map() {
    if !root() {
        return;
    }
    let empty = render(&[], &[], &node(), &config());
    let fixed = empty.sets().len() + empty.maps().len();
    // Not a set or map per Service: the skeleton's, and an endpoints map per 64 Services.
    for (n, maps) in [(10, 1), (64, 2), (10_000, 157)] {
        let ns = Netns::new("nlsets");
        let (svcs, slices) = cluster(n, None);
        let rs = render(&svcs, &slices, &node(), &config());
        NftSocket::open_in(&ns.path())
            .unwrap()
            .apply(&rs.repair(None, loaded_forms))
            .unwrap();
        assert_eq!(sets_and_maps(&ns), fixed + maps, "{n} services");
    }
}
