//! `Ruleset::repair` against a table loaded from another ruleset: only the changed parts,
//! in an order nft accepts, and the same changes as the Renderer's own updates.

use crate::common::{config, ep, node, slice, tcp_port, web};
use kinet_proxy_rules::{render, render_with_ids, Action, Change, Rule, Ruleset, Update};

/// The update that turns a kernel holding `old` into `new`.
fn repair(new: &Ruleset, old: &Ruleset) -> Update {
    new.repair(Some(&old.as_loaded(Rule::loaded_lines)), Rule::loaded_lines)
}

#[test]
fn same_ruleset_needs_nothing() {
    let (svcs, slices) = web();
    let rs = render(&svcs, &slices, &node("node-a"), &config());
    assert_eq!(repair(&rs, &rs).to_nft(), "");
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
    let update = repair(&after, &before).to_nft();
    // Element-only: the gone endpoint's range is given to the others, no rule changes.
    assert!(update.lines().all(|l| l.contains(" element ")), "{update}");
    assert!(
        update.contains("hairpin { 10.244.2.8 . 10.244.2.8 }"),
        "{update}"
    );
    assert!(update.contains(": 10.244.2.7 . 8080 }"), "{update}");
    assert!(!update.contains("10.244.2.8 . 8080"), "{update}");
}

/// The lines of an update, sorted: the renderer may order independent changes differently.
fn sorted(update: &Update) -> Vec<String> {
    let mut lines: Vec<String> = update.to_nft().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn per_service_updates_equal_whole_table_differences() {
    use kinet_proxy_rules::Renderer;
    use serde_json::json;

    let (web, web_slices) = web();
    let (edge, edge_slices) = crate::common::edge("Local");
    let mut sticky = edge[0].clone();
    let spec = sticky.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    let fewer = slice(
        "default",
        "web",
        "web-abc",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a")],
    );
    // The same ClusterIP and port claimed by two Services: the first in name order wins.
    let twin = crate::common::service(
        "default",
        "aaa-twin",
        json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}),
        None,
    );
    let steps: Vec<(Vec<_>, Vec<_>)> = vec![
        (web.clone(), web_slices.clone()),
        (web.clone(), web_slices.clone()),
        (
            [web.clone(), edge.clone()].concat(),
            [web_slices.clone(), edge_slices.clone()].concat(),
        ),
        (
            [web.clone(), vec![sticky.clone()]].concat(),
            [vec![fewer.clone()], edge_slices.clone()].concat(),
        ),
        (
            [web.clone(), vec![twin.clone()]].concat(),
            vec![fewer.clone()],
        ),
        (web.clone(), vec![fewer.clone()]),
        (vec![sticky], edge_slices),
        (vec![], vec![]),
    ];
    let (node, config) = (node("node-a"), config());
    let mut renderer = Renderer::new(&node, &config);
    let mut before: Option<kinet_proxy_rules::Ruleset> = None;
    for (i, (svcs, slices)) in steps.iter().enumerate() {
        let synced = renderer.sync(svcs, slices);
        // The endpoint groups keep the ids the renderer gave them.
        let whole = render_with_ids(svcs, slices, &node, &config, renderer.group_ids());
        assert_eq!(renderer.ruleset().to_nft(), whole.to_nft(), "step {i}");
        match &before {
            None => assert!(
                synced.update.is_none(),
                "step {i}: the first sync loads in full"
            ),
            Some(old) => {
                let want = repair(&whole, old);
                match synced.update {
                    Some(got) => assert_eq!(sorted(&got), sorted(&want), "step {i}"),
                    // A changed set definition: both replace the table.
                    None => assert_eq!(want.changes[0], Change::DeleteTable, "step {i}"),
                }
            }
        }
        before = Some(whole);
    }
}

#[test]
fn scaling_from_no_endpoints_and_back_changes_elements_only() {
    use kinet_proxy_rules::Renderer;

    // A ClusterIP Service, and a LoadBalancer with Local external policy (its local chain
    // and map exist whether or not this node has an endpoint).
    let (web, web_slices) = web();
    let (edge, edge_slices) = crate::common::edge("Local");
    let svcs = [web, edge].concat();
    let empty = [
        slice("default", "web", "web-abc", tcp_port("http", 8080), vec![]),
        slice("default", "edge", "edge-1", tcp_port("http", 8080), vec![]),
    ];
    let one = [
        slice(
            "default",
            "web",
            "web-abc",
            tcp_port("http", 8080),
            vec![ep("10.244.2.7", "node-b")],
        ),
        slice(
            "default",
            "edge",
            "edge-1",
            tcp_port("http", 8080),
            vec![ep("10.244.1.5", "node-a")],
        ),
    ];
    let full = [web_slices, edge_slices].concat();
    let (node, config) = (node("node-a"), config());
    let mut renderer = Renderer::new(&node, &config);
    renderer.sync(&svcs, &empty);
    for (step, slices) in [&one[..], &empty[..], &full[..], &empty[..]]
        .into_iter()
        .enumerate()
    {
        let before = renderer.ruleset();
        let update = renderer.sync(&svcs, slices).update.expect("incremental");
        let text = update.to_nft();
        assert!(!text.is_empty(), "step {step}: something changed");
        assert!(
            update.changes.iter().all(|c| matches!(
                c,
                Change::AddMapElement { .. }
                    | Change::DeleteMapElement { .. }
                    | Change::AddSetElement { .. }
                    | Change::DeleteSetElement { .. }
            )),
            "step {step}: {text}"
        );
        let after = render(&svcs, slices, &node, &config);
        assert_eq!(
            sorted(&update),
            sorted(&repair(&after, &before)),
            "step {step}"
        );
        // The no-endpoints verdict is an element of its own.
        let rejecting = slices[0].endpoints.is_empty();
        assert_eq!(
            after
                .map("no-endpoint-services")
                .is_some_and(|m| !m.elements.is_empty()),
            rejecting,
            "step {step}"
        );
    }
}

/// The offsets of the endpoint groups `ns/svc` picks from, by chain.
fn offsets(rs: &Ruleset, svc: &str) -> Vec<(String, u32)> {
    let chains = rs.chains_for("default", svc).into_iter();
    let rules = chains.flat_map(|c| c.rules.iter().map(move |r| (c, r)));
    rules
        .filter_map(|(c, r)| match r.action {
            Action::DnatRandom { offset, .. } => Some((c.name.clone(), offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_service_port_keeps_its_endpoint_group_and_a_freed_id_is_reused() {
    use kinet_proxy_rules::Renderer;

    let (web, web_slices) = web();
    let (edge, edge_slices) = crate::common::edge("Local");
    let (node, config) = (node("node-a"), config());
    let mut renderer = Renderer::new(&node, &config);
    renderer.sync(&web, &web_slices);
    let web_offsets = offsets(&renderer.ruleset(), "web");
    assert_eq!(web_offsets.len(), 1);
    assert_eq!(web_offsets[0].1, 65536);

    // "edge" sorts before "web", yet web keeps its group: its rule does not change.
    let both = [edge.clone(), web.clone()].concat();
    let update = renderer.sync(&both, &[edge_slices.clone(), web_slices].concat());
    let text = update.update.expect("incremental").to_nft();
    assert!(!text.contains("flush chain"), "{text}");
    let rs = renderer.ruleset();
    assert_eq!(offsets(&rs, "web"), web_offsets);
    // Cluster and local endpoints of edge: a group each.
    let mut edge_offsets: Vec<u32> = offsets(&rs, "edge").iter().map(|o| o.1).collect();
    edge_offsets.sort();
    assert_eq!(edge_offsets, [2 * 65536, 3 * 65536]);

    // web goes; the next new Service port gets its id.
    renderer.sync(&edge, &edge_slices);
    let twin = crate::common::service(
        "default",
        "twin",
        serde_json::json!({"clusterIP": "10.96.0.99", "ports": [{"name": "http", "port": 80}]}),
        None,
    );
    renderer.sync(&[edge, vec![twin]].concat(), &edge_slices);
    let twin_offsets: Vec<u32> = offsets(&renderer.ruleset(), "twin")
        .iter()
        .map(|o| o.1)
        .collect();
    assert_eq!(twin_offsets, [65536]);
}
