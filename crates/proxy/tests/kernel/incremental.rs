//! Incremental loads end in the same kernel state as full loads: a sequence of changes
//! (endpoints come and go, services appear and vanish, affinity, NodePorts, no-endpoint
//! services) is applied as differences in one namespace and in full in another, and the
//! two `nft list table` outputs must agree after every step.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::{Applier, ApplyOutcome};
use kinet_proxy_rules::render;
use serde_json::json;

use crate::objects::{config, node, service, slice};
use crate::support::{root, Netns};

fn sorted_lines(listing: &str) -> Vec<String> {
    let mut lines: Vec<String> = listing
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

fn sticky_nodeport(name: &str, ip: &str, node_port: u16) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"type": "NodePort", "clusterIP": ip, "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": node_port}]},
    }))
    .unwrap()
}

#[test]
fn differences_reach_the_same_state_as_full_loads() {
    if !root() {
        return;
    }
    let inc_ns = Netns::new("inc");
    let full_ns = Netns::new("full");
    let mut inc = Applier::new(inc_ns.path(), "kinet");
    let mut full = Applier::new(full_ns.path(), "kinet");

    let web = service("default", "web", Some("10.96.0.20"), 80);
    let api = sticky_nodeport("api", "10.96.0.21", 30080);
    let lonely = service("default", "lonely", Some("10.96.0.22"), 80);
    let steps: Vec<(Vec<Service>, Vec<EndpointSlice>)> = vec![
        (
            vec![web.clone(), lonely.clone()],
            vec![slice(
                "default",
                "web",
                &["10.244.1.5", "10.244.1.6"],
                8080,
                "TCP",
            )],
        ),
        // An endpoint leaves, another service appears with affinity and a NodePort.
        (
            vec![web.clone(), lonely.clone(), api.clone()],
            vec![
                slice("default", "web", &["10.244.1.5"], 8080, "TCP"),
                slice("default", "api", &["10.244.1.7", "10.244.1.8"], 9090, "TCP"),
            ],
        ),
        // lonely gets an endpoint, web loses all, api's port changes.
        (
            vec![web.clone(), lonely.clone(), api.clone()],
            vec![
                slice("default", "lonely", &["10.244.1.9"], 8080, "TCP"),
                slice("default", "api", &["10.244.1.7"], 9091, "TCP"),
            ],
        ),
        // Services vanish.
        (
            vec![web.clone()],
            vec![slice("default", "web", &["10.244.1.5"], 8080, "TCP")],
        ),
    ];
    for (i, (svcs, slices)) in steps.iter().enumerate() {
        let rs = render(svcs, slices, &node(), &config());
        let outcome = inc.apply(&rs).unwrap();
        let ApplyOutcome::Applied { full: was_full, .. } = outcome else {
            panic!("step {i}: nothing applied");
        };
        assert_eq!(was_full, i == 0, "step {i}: only the first load is full");
        full.force_full_sync();
        full.apply(&rs).unwrap();
        let a = sorted_lines(&inc.list().unwrap().unwrap());
        let b = sorted_lines(&full.list().unwrap().unwrap());
        assert_eq!(a, b, "step {i}: incremental and full listings differ");
    }
}
