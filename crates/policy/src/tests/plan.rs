//! Update plans: elements when only memberships move, objects added and removed in place when
//! policies come and go, the whole table only when nothing is known of the kernel's.

use super::*;
use crate::{plan, Change, Update};

fn a_from_b() -> Cluster {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "a-from-b",
        json!({"podSelector": pod_is("a"), "ingress": [{"from": [{"podSelector": pod_is("b")}]}]}),
    );
    c
}

fn changes(old: &crate::Ruleset, new: &crate::Ruleset) -> Vec<Change> {
    match plan(Some(old), new) {
        Some(Update::Changes { table, changes }) => {
            assert_eq!(table, "kinet-policy");
            changes
        }
        other => panic!("expected changes in place, got {other:?}"),
    }
}

/// The node of x/a, where its chain lives.
fn node_of_xa(c: &Cluster) -> String {
    c.pod("x", "a").unwrap().node.clone()
}

#[test]
fn the_first_sync_loads_the_whole_table_and_an_unchanged_one_sends_nothing() {
    let rs = compile(&a_from_b(), NODES[0], &[]);
    assert_eq!(plan(None, &rs), Some(Update::Load(rs.clone())));
    assert_eq!(plan(Some(&rs), &rs), None);
}

#[test]
fn a_policy_created_then_deleted_adds_and_removes_its_objects_in_place() {
    let node = node_of_xa(&model());
    let before = compile(&model(), &node, &[]);
    let after = compile(&a_from_b(), &node, &[]);
    let added = changes(&before, &after);
    let kinds: Vec<String> = added
        .iter()
        .map(|c| c.to_nft("kinet-policy"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    // A set with its element, a counter, a chain with its rules, the map element.
    assert_eq!(
        kinds,
        [
            "add set",
            "add element",
            "add counter",
            "add chain",
            "add rule",
            "add rule",
            "add rule",
            "add element"
        ],
        "{added:#?}"
    );
    let removed = changes(&after, &before);
    let last: Vec<String> = removed.iter().map(|c| c.to_nft("kinet-policy")).collect();
    assert!(
        last[0].starts_with("delete element ip kinet-policy ingress-pods"),
        "{last:#?}"
    );
    assert!(
        last[1].starts_with("flush chain") && last[2].starts_with("delete chain"),
        "{last:#?}"
    );
    assert!(
        last[3].starts_with("delete set") && last[4].starts_with("delete counter"),
        "{last:#?}"
    );
}

#[test]
fn a_pod_relabelled_into_a_selector_is_one_element_added() {
    let before = a_from_b();
    let mut after = before.clone();
    let mut c = after.pod("x", "c").unwrap().clone();
    c.labels.insert("pod".into(), "b".into());
    let ip = c.ip;
    after.set_pod(c);
    let node = node_of_xa(&before);
    let got = changes(&compile(&before, &node, &[]), &compile(&after, &node, &[]));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(&got[0], Change::AddToSet { element, .. }
            if *element == crate::Element::Range(ip, ip)));
    assert!(got[0]
        .to_nft("kinet-policy")
        .starts_with("add element ip kinet-policy peers-"));
}

#[test]
fn a_pod_replaced_under_a_new_address_moves_its_map_element() {
    let before = a_from_b();
    let mut after = before.clone();
    let mut a = after.pod("x", "a").unwrap().clone();
    let old_ip = a.ip;
    a.ip = Ipv4Addr::new(10, 244, 1, 99);
    after.set_pod(a);
    let node = node_of_xa(&before);
    let got = changes(&compile(&before, &node, &[]), &compile(&after, &node, &[]));
    let deleted = got
        .iter()
        .position(|c| matches!(c, Change::DeleteFromMap { addr, .. } if *addr == old_ip));
    let added = got.iter().position(
        |c| matches!(c, Change::AddToMap { addr, .. } if *addr == Ipv4Addr::new(10, 244, 1, 99)),
    );
    assert!(deleted.unwrap() < added.unwrap(), "{got:?}");
}
