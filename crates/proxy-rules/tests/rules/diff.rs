//! `Ruleset::update_from`: only the changed parts, in an order nft accepts.

use crate::common::{config, ep, node, slice, tcp_port, web};
use kinet_proxy_rules::render;

#[test]
fn same_ruleset_needs_nothing() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    assert_eq!(rs.update_from(&rs).map(|u| u.to_nft()).as_deref(), Some(""));
}

#[test]
fn an_endpoint_leaving_touches_only_its_service() {
    let (svcs, slices) = web();
    let before = render(&svcs, &slices, &node("node-a"), &config());
    let fewer = [slice(
        "default",
        "web",
        "web-abc",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    )];
    let after = render(&svcs, &fewer, &node("node-a"), &config());
    let update = after.update_from(&before).expect("incremental").to_nft();
    let lines: Vec<&str> = update.lines().collect();
    assert!(!update.contains("table"), "{update}");
    // The service chain is refilled, the gone endpoint's chain flushed then deleted.
    let flush_svc = lines
        .iter()
        .position(|l| l.starts_with("flush chain ip kinet service-"))
        .expect(&update);
    let gone = lines
        .iter()
        .position(|l| l.starts_with("delete chain ip kinet endpoint-") && l.contains("10.244.2.8"))
        .expect(&update);
    let gone_flush = lines
        .iter()
        .position(|l| l.starts_with("flush chain ip kinet endpoint-") && l.contains("10.244.2.8"))
        .expect(&update);
    assert!(flush_svc < gone_flush && gone_flush < gone, "{update}");
    // Nothing else: no map element changed, the other endpoints untouched.
    assert!(!update.contains("element"), "{update}");
    assert!(!update.contains("add rule ip kinet endpoint-"), "{update}");
    assert!(!update.contains("add chain"), "{update}");
}

#[test]
fn a_changed_skeleton_needs_a_full_load() {
    let (svcs, slices) = web();
    let before = render(&svcs, &slices, &node("node-a"), &config());
    let mut other = config();
    other.table = "other".into();
    let after = render(&svcs, &slices, &node("node-a"), &other);
    assert_eq!(after.update_from(&before), None);
}
