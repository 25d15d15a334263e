//! Golden files: the `nft -f` text of node-1's table for a few upstream cases.
//! `UPDATE_GOLDEN=1 cargo test -p kinet-policy golden` rewrites them after a deliberate change.

use super::*;

fn golden(name: &str, c: &Cluster) {
    let got = compile(c, NODES[0], &[node_ip(NODES[0])]).to_nft();
    let path = format!("{}/tests/golden/{name}.nft", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path).expect("golden file exists");
    assert_eq!(got, want, "{path} differs; UPDATE_GOLDEN=1 rewrites it");
}

#[test]
fn golden_no_policy() {
    golden("no-policy", &model());
}

#[test]
fn golden_default_deny_all() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    golden("default-deny-all", &c);
}

#[test]
fn golden_namespace_and_ports() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-y-on-81",
        json!({"podSelector": pod_is("a"),
        "ingress": [{"from": [{"namespaceSelector": ns_is("y")}, {"namespaceSelector": ns_is("z"), "podSelector": pod_is("b")}],
                     "ports": [{"port": 81}, {"protocol": "UDP", "port": 8000, "endPort": 8010}, {"port": "serve-80-tcp"}]}]}),
    );
    golden("namespace-and-ports", &c);
}

#[test]
fn golden_egress_ip_block_except() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "egress-cidr",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.12/32"]}}]},
                   {"ports": [{"protocol": "UDP", "port": 53}]}]}),
    );
    golden("egress-ip-block-except", &c);
}
