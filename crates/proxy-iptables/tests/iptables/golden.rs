//! Full `iptables-restore` input compared with files under tests/golden/.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p kinet-proxy-iptables --test iptables golden`.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_iptables::{full_restore, render, Saved};

use crate::cases::*;
use crate::common::*;

fn check(name: &str, (svcs, slices): (Vec<Service>, Vec<EndpointSlice>)) {
    let tables = render(&svcs, &slices, &node("node-a"), &config());
    let got = full_restore(&tables, &Saved::default());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.rules"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(
            g,
            w,
            "{name}: line {} differs (UPDATE_GOLDEN=1 to accept)",
            i + 1
        );
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{name}: length differs"
    );
}

#[test]
fn clusterip_three_endpoints() {
    check("clusterip_three_endpoints", web());
}

#[test]
fn lb_cluster_policy() {
    check("lb_cluster_policy", edge("Cluster"));
}

#[test]
fn lb_local_with_local_endpoint() {
    check("lb_local_with_local_endpoint", edge("Local"));
}

#[test]
fn lb_source_ranges() {
    check("lb_source_ranges", guarded());
}

#[test]
fn session_affinity() {
    check("session_affinity", sticky());
}

#[test]
fn no_endpoints() {
    check("no_endpoints", empty());
}

#[test]
fn tutorial_nginx() {
    check("tutorial_nginx", tutorial());
}

#[test]
fn tutorial_grep_shows_both_services_by_name() {
    // `iptables-save | grep KUBE | grep nginx`, as the tutorial reads it.
    let (svcs, slices) = tutorial();
    let text = full_restore(
        &render(&svcs, &slices, &node("node-a"), &config()),
        &Saved::default(),
    );
    let nginx: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("KUBE") && l.contains("nginx"))
        .collect();
    for svc in ["default/nginx-service", "default/nginx-nodeport"] {
        for prefix in ["-A KUBE-SVC-", "-A KUBE-SEP-"] {
            assert!(
                nginx
                    .iter()
                    .any(|l| l.starts_with(prefix) && l.contains(svc)),
                "no {prefix} line names {svc}:\n{}",
                nginx.join("\n")
            );
        }
    }
    assert!(nginx
        .iter()
        .any(|l| l.contains(r#"--comment "default/nginx-service cluster IP""#)));
}
