//! The applier against a real namespace: loads over netlink, skips unchanged syncs,
//! resyncs that read the table back and repair only what differs, refused loads,
//! listing and deletion.

use kinet_proxy::{Applier, ApplyError, ApplyOutcome, ProxyConfig};
use kinet_proxy_rules::render;

use crate::objects::{config, node, service, slice, Proxy};
use crate::support::{root, Netns};

#[test]
fn loads_skips_unchanged_and_resyncs() {
    if !root() {
        return;
    }
    let ns = Netns::new("ap");
    let mut proxy = Proxy::new(&ns);
    assert_eq!(
        proxy.applier.list().unwrap(),
        None,
        "fresh namespace has no table"
    );

    let svc = service("default", "web", Some("10.96.0.20"), 80);
    let two = [slice(
        "default",
        "web",
        &["10.244.1.5", "10.244.1.6"],
        8080,
        "TCP",
    )];
    let out = proxy.load(std::slice::from_ref(&svc), &two);
    assert!(
        matches!(out, ApplyOutcome::Applied { full: true, .. }),
        "{out:?}"
    );
    let listing = proxy.applier.list().unwrap().unwrap();
    assert!(listing.contains(": 10.244.1.5 . 8080"), "{listing}");
    assert!(listing.contains(": 10.244.1.6 . 8080"), "{listing}");
    assert_eq!(
        proxy.load(std::slice::from_ref(&svc), &two),
        ApplyOutcome::Unchanged
    );

    // A resync of an untouched table sends nothing.
    assert_eq!(proxy.resync(std::slice::from_ref(&svc), &two), 0);

    // Someone deletes our table: a resync puts it back.
    ns.exec(&["nft", "delete", "table", "ip", "kinet"]);
    proxy.applier.force_resync();
    proxy.load(std::slice::from_ref(&svc), &two);
    assert_eq!(proxy.applier.list().unwrap().unwrap(), listing);

    // One endpoint gone: its range of the endpoint map goes to the other.
    let one = [slice("default", "web", &["10.244.1.5"], 8080, "TCP")];
    proxy.load(&[svc], &one);
    let listing = proxy.applier.list().unwrap().unwrap();
    assert!(listing.contains(": 10.244.1.5 . 8080"), "{listing}");
    assert!(!listing.contains("10.244.1.6"), "{listing}");

    proxy.applier.delete().unwrap();
    assert_eq!(proxy.applier.list().unwrap(), None);
    proxy.applier.delete().unwrap(); // idempotent
}

/// Handles of the rules with `text` in the table's listing.
fn handles(ns: &Netns, text: &str) -> Vec<String> {
    ns.exec(&["nft", "-a", "list", "table", "ip", "kinet"])
        .lines()
        .filter(|l| l.contains(text))
        .filter_map(|l| {
            l.rsplit_once("# handle ")
                .map(|(_, h)| h.trim().to_string())
        })
        .collect()
}

#[test]
fn a_resync_repairs_changes_made_by_hand() {
    if !root() {
        return;
    }
    let ns = Netns::new("fix");
    let mut proxy = Proxy::new(&ns);
    let svc = service("default", "web", Some("10.96.0.20"), 80);
    let eps = [slice(
        "default",
        "web",
        &["10.244.1.5", "10.244.1.6"],
        8080,
        "TCP",
    )];
    proxy.load(std::slice::from_ref(&svc), &eps);
    let want = proxy.applier.list().unwrap().unwrap();

    // Out of band: a DNAT rule deleted, a ClusterIP dropped from its set, a map element
    // and a chain added.
    let chain = want
        .lines()
        .find(|l| l.trim_start().starts_with("chain service-") && l.contains("/web/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let dnat = handles(&ns, "dnat ip to numgen random");
    assert_eq!(dnat.len(), 1, "{want}");
    ns.exec(&[
        "nft", "delete", "rule", "ip", "kinet", &chain, "handle", &dnat[0],
    ]);
    ns.exec(&[
        "nft",
        "delete",
        "element",
        "ip",
        "kinet",
        "cluster-ips",
        "{ 10.96.0.20 }",
    ]);
    ns.exec(&["nft", "add", "chain", "ip", "kinet", "stray"]);
    ns.exec(&[
        "nft",
        "add",
        "element",
        "ip",
        "kinet",
        "service-ips",
        "{ 10.96.0.99 . tcp . 80 : goto stray }",
    ]);
    assert_ne!(proxy.applier.list().unwrap().unwrap(), want);

    let changes = proxy.resync(std::slice::from_ref(&svc), &eps);
    // Flush and refill one chain (2 rules), one set element, one map element, flush and
    // delete the stray chain.
    assert_eq!(changes, 7, "only the differences are sent");
    assert_eq!(proxy.applier.list().unwrap().unwrap(), want);
}

#[test]
fn a_refused_load_reports_the_kernel_error_and_resyncs_next() {
    if !root() {
        return;
    }
    let ns = Netns::new("bad");
    let mut good = Proxy::new(&ns);
    good.load(&[], &[]);
    assert!(!good.applier.needs_resync());

    // A table name the kernel refuses (longer than NFT_TABLE_MAXNAMELEN).
    let long = "k".repeat(300);
    let bad_cfg = ProxyConfig {
        table: long.clone(),
        ..config()
    };
    let bad = render(&[], &[], &node(), &bad_cfg);
    let mut bad_applier = Applier::new(ns.path(), long);
    match bad_applier.reconcile(&bad) {
        Err(ApplyError::Netlink(e)) => assert!(!e.to_string().is_empty()),
        other => panic!("expected a netlink error, got {other:?}"),
    }
    assert!(bad_applier.needs_resync());

    // A ruleset for another table is refused before anything is sent.
    assert!(matches!(
        good.applier.reconcile(&bad),
        Err(ApplyError::TableMismatch { .. })
    ));
    // The good table is untouched and still loaded.
    assert!(good.applier.list().unwrap().is_some());
}

#[test]
fn removed_udp_endpoints_are_flushed() {
    if !root() {
        return;
    }
    let ns = Netns::new("ct");
    let mut proxy = Proxy::new(&ns);
    let mut svc = service("default", "dns", Some("10.96.0.10"), 53);
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    let svcs = [svc];
    proxy.load(
        &svcs,
        &[slice(
            "default",
            "dns",
            &["10.244.1.5", "10.244.1.6"],
            5353,
            "UDP",
        )],
    );
    let outcome = proxy.load(
        &svcs,
        &[slice("default", "dns", &["10.244.1.5"], 5353, "UDP")],
    );
    let ApplyOutcome::Applied { flushed_udp, .. } = outcome else {
        panic!("expected a load, got {outcome:?}");
    };
    assert_eq!(flushed_udp, vec!["10.244.1.6:5353".parse().unwrap()]);
}
