//! The applier's decisions against a recording fake of the two programs.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::os::unix::process::ExitStatusExt;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_iptables::render;
use kinet_proxy_rules::{NodeInfo, ProxyConfig};
use serde_json::json;

use super::*;

#[derive(Default)]
struct Fake {
    /// What `save` answers, in turn (empty: nothing saved).
    saves: VecDeque<String>,
    restored: Vec<String>,
    fail_restore: bool,
    flushed: Vec<SocketAddrV4>,
}

impl IptablesBackend for Fake {
    fn save(&mut self) -> Result<String> {
        Ok(self.saves.pop_front().unwrap_or_default())
    }
    fn restore(&mut self, text: &str) -> Result<()> {
        self.restored.push(text.to_string());
        if std::mem::take(&mut self.fail_restore) {
            return Err(ApplyError::Iptables {
                program: "iptables-restore".into(),
                status: std::process::ExitStatus::from_raw(1 << 8),
                stderr: "line 3 failed".into(),
            });
        }
        Ok(())
    }
    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize> {
        self.flushed.push(ep);
        Ok(1)
    }
}

fn tables(endpoints: &[&str]) -> Tables {
    with_proto(endpoints, "TCP")
}

fn with_proto(endpoints: &[&str], proto: &str) -> Tables {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": proto}]}
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-1",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": proto}],
        "endpoints": endpoints.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>()
    }))
    .unwrap();
    let node = NodeInfo {
        name: "node-a".into(),
        node_ips: vec!["192.168.0.2".parse().unwrap()],
        pod_cidr: None,
    };
    render([&svc], [&slice], &node, &ProxyConfig::default())
}

fn full(out: &ApplyOutcome) -> bool {
    matches!(out, ApplyOutcome::Applied { full: true, .. })
}

#[test]
fn first_sync_is_full_then_only_changes_then_nothing() {
    let mut a = IptablesApplier::with_backend(Fake::default());
    assert!(full(&a.apply(tables(&["10.244.1.5"])).unwrap()));
    let out = a.apply(tables(&["10.244.1.5", "10.244.1.6"])).unwrap();
    assert!(
        matches!(
            out,
            ApplyOutcome::Applied {
                full: false,
                changes: 2,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(
        a.apply(tables(&["10.244.1.5", "10.244.1.6"])).unwrap(),
        ApplyOutcome::Unchanged
    );
    let restored = &a.backend.restored;
    assert_eq!(restored.len(), 2);
    assert!(restored[0].contains("-I PREROUTING 1 "));
    // The partial transaction names the Service chain and the new endpoint's chain only.
    assert_eq!(
        restored[1].lines().filter(|l| l.starts_with(':')).count(),
        2,
        "{}",
        restored[1]
    );
    assert!(!restored[1].contains("PREROUTING"));
}

#[test]
fn a_failed_or_forced_sync_rewrites_everything_against_what_the_kernel_holds() {
    let mut a = IptablesApplier::with_backend(Fake::default());
    a.apply(tables(&["10.244.1.5"])).unwrap();
    a.backend.fail_restore = true;
    assert!(a.apply(tables(&[])).is_err());
    // The kernel may hold either state: read it back, replace it all.
    a.backend
        .saves
        .push_back("*nat\n:KUBE-SEP-STALE - [0:0]\nCOMMIT\n".into());
    assert!(full(&a.apply(tables(&[])).unwrap()));
    assert!(a.backend.restored[2].contains("-X KUBE-SEP-STALE\n"));
    a.force_resync();
    assert!(full(&a.apply(tables(&[])).unwrap()));
}

#[test]
fn udp_endpoints_that_leave_have_their_flows_flushed_also_across_a_resync() {
    let mut a = IptablesApplier::with_backend(Fake::default());
    a.apply(with_proto(&["10.244.1.5", "10.244.1.6"], "UDP"))
        .unwrap();
    assert!(a.backend.flushed.is_empty());
    let out = a.apply(with_proto(&["10.244.1.6"], "UDP")).unwrap();
    let gone: SocketAddrV4 = "10.244.1.5:8080".parse().unwrap();
    assert!(
        matches!(&out, ApplyOutcome::Applied { flushed_udp, .. } if *flushed_udp == [gone]),
        "{out:?}"
    );
    // A forced resync rewrites everything, and still knows what left.
    a.force_resync();
    a.apply(with_proto(&[], "UDP")).unwrap();
    let other: SocketAddrV4 = "10.244.1.6:8080".parse().unwrap();
    assert_eq!(a.backend.flushed, [gone, other]);
    // TCP endpoints need no flush.
    a.apply(tables(&["10.244.1.5"])).unwrap();
    a.apply(tables(&[])).unwrap();
    assert_eq!(a.backend.flushed.len(), 2);
}

#[test]
fn remove_all_cleans_what_is_there() {
    let mut a = IptablesApplier::with_backend(Fake::default());
    assert!(!a.remove_all().unwrap(), "nothing saved, nothing sent");
    assert!(a.backend.restored.is_empty());
    a.backend.saves.push_back(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
         -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n"
            .into(),
    );
    assert!(a.remove_all().unwrap());
    let text = &a.backend.restored[0];
    assert!(text.contains(
        "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
    assert!(text.contains("-X KUBE-SERVICES\n"));
}

#[test]
fn modes_parse_and_print() {
    assert_eq!("iptables".parse(), Ok(ProxyMode::Iptables));
    assert_eq!(ProxyMode::default().to_string(), "nftables");
    assert!("ipvs".parse::<ProxyMode>().is_err());
}
