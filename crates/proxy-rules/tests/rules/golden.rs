//! Rendered rulesets compared with files under tests/golden/.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p kinet-proxy-rules --test rules golden`.

use std::path::PathBuf;

use crate::common::*;
use kinet_proxy_rules::{render, Ruleset};
use serde_json::json;

fn check(name: &str, rs: &Ruleset) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.nft"));
    let got = rs.to_nft();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{name}: rendered ruleset differs from {} at line {}:\n got: {:?}\nwant: {:?}\n(run with UPDATE_GOLDEN=1 to accept)",
            path.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first),
        );
    }
}

#[test]
fn clusterip_three_endpoints() {
    let (svcs, slices) = web();
    check(
        "clusterip_three_endpoints",
        &render(&svcs, &slices, &node("node-a"), &config()),
    );
}

#[test]
fn multiport_named_ports() {
    let svc = service(
        "shop",
        "api",
        json!({
            "clusterIP": "10.96.0.40",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": "prom", "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "ctl", "port": 7000, "protocol": "SCTP"}
            ]
        }),
        None,
    );
    let sl = slice(
        "shop",
        "api",
        "api-1",
        json!([
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "protocol": "TCP"},
            {"name": "dns", "port": 5353, "protocol": "UDP"},
            {"name": "ctl", "port": 7001, "protocol": "SCTP"}
        ]),
        vec![ep("10.244.1.10", "node-a"), ep("10.244.2.10", "node-b")],
    );
    check(
        "multiport_named_ports",
        &render(&[svc], &[sl], &node("node-a"), &config()),
    );
}

#[test]
fn lb_local_policy_with_local_endpoint() {
    let (svcs, slices) = edge("Local");
    check(
        "lb_local_with_local_endpoint",
        &render(&svcs, &slices, &node("node-a"), &config()),
    );
}

#[test]
fn lb_local_policy_without_local_endpoint() {
    let (svcs, slices) = edge("Local");
    check(
        "lb_local_without_local_endpoint",
        &render(&svcs, &slices, &node("node-c"), &config()),
    );
}

#[test]
fn nodeport_cluster_policy() {
    let (svcs, slices) = edge("Cluster");
    check(
        "lb_cluster_policy",
        &render(&svcs, &slices, &node("node-c"), &config()),
    );
}

#[test]
fn lb_source_ranges() {
    let (svcs, slices) = guarded();
    check(
        "lb_source_ranges",
        &render(&svcs, &slices, &node("node-a"), &config()),
    );
}

#[test]
fn session_affinity() {
    let svc = service(
        "default",
        "sticky",
        json!({
            "clusterIP": "10.96.0.50",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "ports": [{"name": "http", "port": 80}]
        }),
        None,
    );
    let sl = slice(
        "default",
        "sticky",
        "sticky-1",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    check(
        "session_affinity",
        &render(&[svc], &[sl], &node("node-a"), &config()),
    );
}

#[test]
fn no_endpoints() {
    let lonely = cluster_ip("default", "lonely", "10.96.0.60", "http", 80);
    let np = service(
        "default",
        "np-empty",
        json!({
            "type": "NodePort",
            "clusterIP": "10.96.0.61",
            "ports": [{"name": "http", "port": 80, "nodePort": 30061}]
        }),
        None,
    );
    // A slice whose only endpoint is not ready counts as no endpoints.
    let sl = slice(
        "default",
        "lonely",
        "lonely-1",
        tcp_port("http", 8080),
        vec![ep_cond("10.244.2.9", "node-b", false, false, false)],
    );
    check(
        "no_endpoints",
        &render(&[lonely, np], &[sl], &node("node-a"), &config()),
    );
}

#[test]
fn headless_and_external_name_render_nothing() {
    let headless = service(
        "default",
        "db",
        json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        None,
    );
    let ext = service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
        None,
    );
    let sl = slice(
        "default",
        "db",
        "db-1",
        tcp_port("pg", 5432),
        vec![ep("10.244.1.20", "node-a")],
    );
    let rs = render(&[headless, ext], &[sl], &node("node-a"), &config());
    assert!(rs.chains_for("default", "db").is_empty());
    assert!(rs.chains_for("default", "ext").is_empty());
    // Nothing beyond the fixed skeleton.
    let empty = render(&[], &[], &node("node-a"), &config());
    assert_eq!(rs.to_nft(), empty.to_nft());
    check("headless", &rs);
}

/// Without `nft` at hand, check the transaction's structure: every chain,
/// set and map a rule or element refers to is declared on an earlier line,
/// nothing is declared twice, and the table is reset before being rebuilt.
#[test]
fn golden_files_only_reference_declared_objects() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // the other tests are rewriting the files right now
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..3],
            &[
                "add table ip kinet",
                "delete table ip kinet",
                "add table ip kinet { comment \"rules for kinet service proxy\" ; }"
            ],
            "{}",
            path.display()
        );
        let mut declared = std::collections::HashSet::new();
        for line in &lines[3..] {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["add", "chain" | "set" | "map", "ip", "kinet", name, ..] => {
                    assert!(declared.insert(name.to_string()), "declared twice: {line}");
                }
                ["add", "rule" | "element", "ip", "kinet", owner, rest @ ..] => {
                    assert!(declared.contains(*owner), "undeclared {owner}: {line}");
                    for (i, w) in rest.iter().enumerate() {
                        let target = match (i.checked_sub(1).map(|j| rest[j]), w) {
                            (Some("goto" | "jump"), t) => Some(*t),
                            (_, t) if t.starts_with('@') => Some(&t[1..]),
                            _ => None,
                        };
                        if let Some(t) = target {
                            assert!(declared.contains(t), "undeclared {t}: {line}");
                        }
                    }
                    assert_eq!(
                        line.matches('{').count(),
                        line.matches('}').count(),
                        "{line}"
                    );
                }
                [] => {}
                _ => panic!("unexpected line in {}: {line}", path.display()),
            }
        }
        checked += 1;
    }
    assert!(checked >= 7, "golden files missing");
}
