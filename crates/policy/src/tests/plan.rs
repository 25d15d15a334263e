//! Update plans: element changes when only memberships move, the whole table otherwise.

use super::*;
use crate::{plan, ElementChange, Update};

fn deny_ingress_to_a() -> Cluster {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "a-from-b",
        json!({"podSelector": pod_is("a"), "ingress": [{"from": [{"podSelector": pod_is("b")}]}]}),
    );
    c
}

#[test]
fn the_first_sync_and_a_changed_skeleton_load_the_whole_table() {
    let before = compile(&model(), NODES[0], &[]);
    let after = compile(&deny_ingress_to_a(), NODES[0], &[]);
    assert_eq!(plan(None, &before), Some(Update::Load(before.clone())));
    assert_eq!(
        plan(Some(&before), &after),
        Some(Update::Load(after.clone()))
    );
    assert_eq!(plan(Some(&after), &after), None);
}

#[test]
fn a_pod_relabelled_into_a_selector_is_one_element_added() {
    let before = deny_ingress_to_a();
    let mut after = before.clone();
    let mut c = after.pod("x", "c").unwrap().clone();
    c.labels.insert("pod".into(), "b".into());
    let ip = c.ip;
    after.set_pod(c);
    let (old, new) = (
        compile(&before, NODES[0], &[]),
        compile(&after, NODES[0], &[]),
    );
    let Some(Update::Elements { table, changes }) = plan(Some(&old), &new) else {
        panic!("expected element changes");
    };
    assert_eq!(table, "kinet-policy");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        matches!(&changes[0], ElementChange::AddToSet { element, .. }
            if *element == crate::Element::Range(ip, ip))
    );
    let text = plan(Some(&old), &new).unwrap().to_nft();
    assert!(
        text.starts_with("add element ip kinet-policy peers-") && text.contains(&ip.to_string()),
        "{text}"
    );
}

#[test]
fn a_pod_replaced_under_a_new_address_moves_its_map_element() {
    let before = deny_ingress_to_a();
    let mut after = before.clone();
    let mut a = after.pod("x", "a").unwrap().clone();
    let old_ip = a.ip;
    a.ip = Ipv4Addr::new(10, 244, 1, 99);
    after.set_pod(a);
    let node = before.pod("x", "a").unwrap().node.clone();
    let (old, new) = (compile(&before, &node, &[]), compile(&after, &node, &[]));
    let Some(Update::Elements { changes, .. }) = plan(Some(&old), &new) else {
        panic!("expected element changes");
    };
    let deleted = changes
        .iter()
        .position(|c| matches!(c, ElementChange::DeleteFromMap { addr, .. } if *addr == old_ip));
    let added = changes.iter().position(
        |c| matches!(c, ElementChange::AddToMap { addr, .. } if *addr == Ipv4Addr::new(10, 244, 1, 99)),
    );
    assert!(deleted.unwrap() < added.unwrap(), "{changes:?}");
}
