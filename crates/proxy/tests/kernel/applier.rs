//! The applier against a real namespace: load, skip unchanged, forced
//! resync, rejected rulesets, listing and deletion.

use kinet_proxy::{Applier, ApplyError, ApplyOutcome, ProxyConfig};
use kinet_proxy_rules::render;

use crate::objects::{config, node, service, slice};
use crate::support::{root, Netns};

#[test]
fn loads_skips_unchanged_and_resyncs() {
    if !root() {
        return;
    }
    let ns = Netns::new("ap");
    let mut applier = Applier::new(ns.path(), "kinet");
    assert_eq!(
        applier.list().unwrap(),
        None,
        "fresh namespace has no table"
    );

    let svc = service("default", "web", Some("10.96.0.20"), 80);
    let two = render(
        std::slice::from_ref(&svc),
        &[slice(
            "default",
            "web",
            &["10.244.1.5", "10.244.1.6"],
            8080,
            "TCP",
        )],
        &node(),
        &config(),
    );
    applier.check(&two).unwrap();
    assert_eq!(applier.list().unwrap(), None, "check changes nothing");

    assert!(matches!(
        applier.apply(&two).unwrap(),
        ApplyOutcome::Applied { .. }
    ));
    let listing = applier.list().unwrap().unwrap();
    assert!(listing.contains("dnat to 10.244.1.5:8080"), "{listing}");
    assert!(listing.contains("dnat to 10.244.1.6:8080"), "{listing}");
    assert_eq!(applier.apply(&two).unwrap(), ApplyOutcome::Unchanged);

    // Someone deletes our table: a forced full sync puts it back.
    ns.exec(&["nft", "delete", "table", "ip", "kinet"]);
    applier.force_full_sync();
    assert!(matches!(
        applier.apply(&two).unwrap(),
        ApplyOutcome::Applied { .. }
    ));
    assert!(applier.list().unwrap().is_some());

    // One endpoint gone: the stale endpoint chain goes with it.
    let one = render(
        &[svc],
        &[slice("default", "web", &["10.244.1.5"], 8080, "TCP")],
        &node(),
        &config(),
    );
    applier.apply(&one).unwrap();
    let listing = applier.list().unwrap().unwrap();
    assert!(listing.contains("dnat to 10.244.1.5:8080"), "{listing}");
    assert!(!listing.contains("10.244.1.6"), "{listing}");

    applier.delete().unwrap();
    assert_eq!(applier.list().unwrap(), None);
    applier.delete().unwrap(); // idempotent
}

#[test]
fn a_rejected_ruleset_reports_nft_error_and_forces_full_sync() {
    if !root() {
        return;
    }
    let ns = Netns::new("bad");
    let good_cfg = config();
    let good = render(&[], &[], &node(), &good_cfg);
    let mut applier = Applier::new(ns.path(), "kinet");
    applier.apply(&good).unwrap();
    assert!(!applier.needs_full_sync());

    // A table name nft cannot parse; render does not validate it.
    let bad_cfg = ProxyConfig {
        table: "kinet bad".into(),
        ..config()
    };
    let bad = render(&[], &[], &node(), &bad_cfg);
    let mut bad_applier = Applier::new(ns.path(), "kinet bad");
    match bad_applier.apply(&bad) {
        Err(ApplyError::Nft { stderr, .. }) => assert!(stderr.contains("Error"), "{stderr}"),
        other => panic!("expected an nft error, got {other:?}"),
    }
    assert!(bad_applier.needs_full_sync());

    // A ruleset for another table is refused before nft runs.
    assert!(matches!(
        applier.apply(&bad),
        Err(ApplyError::TableMismatch { .. })
    ));
    // The good table is untouched and still loaded.
    assert!(applier.list().unwrap().is_some());
}

#[test]
fn removed_udp_endpoints_are_flushed_when_conntrack_exists() {
    if !root() {
        return;
    }
    let ns = Netns::new("ct");
    let mut applier = Applier::new(ns.path(), "kinet");
    let svc = service("default", "dns", Some("10.96.0.10"), 53);
    let mut svc_udp = svc.clone();
    svc_udp.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    let both = render(
        std::slice::from_ref(&svc_udp),
        &[slice(
            "default",
            "dns",
            &["10.244.1.5", "10.244.1.6"],
            5353,
            "UDP",
        )],
        &node(),
        &config(),
    );
    let one = render(
        &[svc_udp],
        &[slice("default", "dns", &["10.244.1.5"], 5353, "UDP")],
        &node(),
        &config(),
    );
    applier.apply(&both).unwrap();
    let outcome = applier.apply(&one).unwrap();
    let ApplyOutcome::Applied { flushed_udp, .. } = outcome else {
        panic!("expected a load, got {outcome:?}");
    };
    if applier.conntrack_available() {
        assert_eq!(flushed_udp, vec!["10.244.1.6:5353".parse().unwrap()]);
    } else {
        eprintln!("conntrack tool absent: flush not exercised");
        assert!(flushed_udp.is_empty());
    }
}
