//! The applier's decisions against the recording fake: no root, no kernel.

use std::io;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_rules::{Change, Loaded, NodeInfo, ProxyConfig, Renderer};
use serde_json::json;

use super::fake::FakeNft;
use super::{Applier, ApplyError, ApplyOutcome};
use crate::netlink::{loaded_forms, LoadedRule, NetlinkError};

fn service(name: &str, ip: &str, proto: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "p", "port": 53, "protocol": proto}]},
    }))
    .unwrap()
}

fn slice(svc: &str, ips: &[&str], proto: &str) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "nodeName": "node-a", "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{svc}-1"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 5353, "protocol": proto}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// A Renderer for node-a and an applier of table `kinet` over a fresh fake kernel.
struct Proxy {
    renderer: Renderer,
    applier: Applier<FakeNft>,
}

impl Proxy {
    fn new() -> Proxy {
        let node = NodeInfo {
            name: "node-a".into(),
            node_ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
            pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
        };
        Proxy {
            renderer: Renderer::new(&node, &ProxyConfig::default()),
            applier: Applier::with_backend("/fake/netns", "kinet", FakeNft::default()),
        }
    }

    fn load(
        &mut self,
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> super::Result<ApplyOutcome> {
        let synced = self.renderer.sync(services, slices);
        self.applier.apply_synced(&self.renderer, synced)
    }

    fn kernel(&mut self) -> &mut FakeNft {
        &mut self.applier.backend
    }

    /// Whether the fake kernel holds exactly the renderer's ruleset.
    fn holds_desired(&mut self) -> bool {
        let want = sorted(self.renderer.ruleset().as_loaded(loaded_forms));
        self.kernel().table.clone().map(sorted) == Some(want)
    }
}

/// Order-normalised: the kernel lists objects in creation order.
fn sorted(mut t: Loaded<LoadedRule>) -> Loaded<LoadedRule> {
    t.chains.sort_by(|a, b| a.name.cmp(&b.name));
    t.sets.sort_by(|a, b| a.name.cmp(&b.name));
    t.maps.sort_by(|a, b| a.name.cmp(&b.name));
    t
}

fn web() -> (Vec<Service>, Vec<EndpointSlice>) {
    (
        vec![service("web", "10.96.0.20", "TCP")],
        vec![slice("web", &["10.244.1.5", "10.244.1.6"], "TCP")],
    )
}

fn changes(out: &ApplyOutcome) -> (bool, usize) {
    match out {
        ApplyOutcome::Applied { full, changes, .. } => (*full, *changes),
        ApplyOutcome::Unchanged => panic!("expected a load, got Unchanged"),
    }
}

fn rejected() -> NetlinkError {
    NetlinkError::Rejected {
        what: "add rule ip kinet x".into(),
        source: io::Error::from_raw_os_error(22),
        more: 0,
    }
}

#[test]
fn first_load_reads_back_then_sends_the_whole_table_once() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    let (full, n) = changes(&p.load(&svcs, &slices).unwrap());
    assert!(full && n > 0);
    let k = p.kernel();
    assert_eq!((k.reads, k.batches.len(), k.generation), (1, 1, 1));
    assert!(p.holds_desired());
    assert!(!p.applier.needs_resync());
}

#[test]
fn unchanged_sync_sends_nothing_and_a_change_sends_only_the_difference() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    assert_eq!(p.load(&svcs, &slices).unwrap(), ApplyOutcome::Unchanged);
    assert_eq!(p.kernel().batches.len(), 1);

    let one = [slice("web", &["10.244.1.5"], "TCP")];
    let (full, n) = changes(&p.load(&svcs, &one).unwrap());
    assert!(!full);
    let k = p.kernel();
    assert_eq!((k.reads, k.batches.len()), (1, 2), "no read-back");
    assert_eq!(k.batches[1].changes.len(), n);
    assert!(
        !k.batches[1]
            .changes
            .iter()
            .any(|c| matches!(c, Change::AddTable(_) | Change::DeleteTable)),
        "{:?}",
        k.batches[1]
    );
    assert!(p.holds_desired());
}

#[test]
fn resync_of_an_untouched_generation_reads_nothing() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    p.applier.force_resync();
    assert!(p.applier.needs_resync());
    assert_eq!(changes(&p.load(&svcs, &slices).unwrap()), (true, 0));
    let k = p.kernel();
    assert_eq!((k.reads, k.batches.len()), (1, 1));
}

#[test]
fn resync_after_someone_elses_commit_reads_back_and_repairs_only_the_damage() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    p.kernel().commit_by_other(|t| {
        let t = t.as_mut().unwrap();
        let c = t.chains.iter_mut().find(|c| !c.rules.is_empty()).unwrap();
        c.rules.clear();
    });
    p.applier.force_resync();
    let (full, n) = changes(&p.load(&svcs, &slices).unwrap());
    assert!(full);
    let k = p.kernel();
    assert_eq!(k.reads, 2);
    let repair = &k.batches[1].changes;
    assert_eq!(repair.len(), n);
    assert!(matches!(repair[0], Change::FlushChain(_)), "{repair:?}");
    assert!(p.holds_desired());
}

#[test]
fn an_unseen_commit_around_ours_forces_the_next_resync_to_read() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.kernel().commit_after_apply = true;
    p.load(&svcs, &slices).unwrap();
    p.applier.force_resync();
    assert_eq!(changes(&p.load(&svcs, &slices).unwrap()), (true, 0));
    assert_eq!(p.kernel().reads, 2, "generation was not ours alone");
}

#[test]
fn a_refused_load_resets_the_connection_and_the_next_load_repairs() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    p.kernel().fail_apply = Some(rejected());
    let one = [slice("web", &["10.244.1.5"], "TCP")];
    let err = p.load(&svcs, &one).unwrap_err();
    assert!(
        matches!(err, ApplyError::Netlink(NetlinkError::Rejected { .. })),
        "{err}"
    );
    assert_eq!(p.kernel().resets, 1);
    assert!(p.applier.needs_resync());

    // The Renderer already moved on: only a read-back finds what the kernel lacks.
    let (full, n) = changes(&p.load(&svcs, &one).unwrap());
    assert!(full && n > 0);
    assert_eq!(p.kernel().reads, 2);
    assert!(p.holds_desired());
}

/// A first load whose read-back fails with `e`.
fn load_unreadable(e: NetlinkError) -> (Proxy, super::Result<ApplyOutcome>) {
    let mut p = Proxy::new();
    p.kernel().fail_read = Some(e);
    let (svcs, slices) = web();
    let out = p.load(&svcs, &slices);
    (p, out)
}

#[test]
fn a_table_that_cannot_be_read_is_replaced() {
    let (mut p, out) = load_unreadable(NetlinkError::Malformed("unknown expression".into()));
    let (full, _) = changes(&out.unwrap());
    assert!(full);
    assert_eq!(p.kernel().batches[0].changes[0], Change::DeleteTable);
    assert_eq!(p.kernel().resets, 0);
    assert!(p.holds_desired());
}

#[test]
fn a_failed_read_fails_the_load_and_resets() {
    let (mut p, out) = load_unreadable(NetlinkError::Socket(io::Error::from_raw_os_error(105)));
    assert!(out.is_err());
    assert_eq!((p.kernel().resets, p.kernel().batches.len()), (1, 0));
    assert!(p.applier.needs_resync());
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    assert!(p.holds_desired());
}

#[test]
fn udp_endpoints_that_leave_are_flushed_and_a_failed_flush_only_warns() {
    let mut p = Proxy::new();
    let svcs = [service("dns", "10.96.0.10", "UDP")];
    p.load(&svcs, &[slice("dns", &["10.244.1.5", "10.244.1.6"], "UDP")])
        .unwrap();
    let out = p
        .load(&svcs, &[slice("dns", &["10.244.1.5"], "UDP")])
        .unwrap();
    let gone = "10.244.1.6:5353".parse().unwrap();
    let ApplyOutcome::Applied { flushed_udp, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(flushed_udp, vec![gone]);
    assert_eq!(p.kernel().flushed, vec![gone]);

    p.load(&svcs, &[slice("dns", &["10.244.1.5", "10.244.1.6"], "UDP")])
        .unwrap();
    p.kernel().fail_flush = Some(NetlinkError::Socket(io::Error::from_raw_os_error(1)));
    let out = p
        .load(&svcs, &[slice("dns", &["10.244.1.5"], "UDP")])
        .unwrap();
    assert!(
        matches!(&out, ApplyOutcome::Applied { flushed_udp, .. } if flushed_udp.is_empty()),
        "{out:?}"
    );
    assert!(!p.applier.needs_resync(), "the load itself succeeded");
}

#[test]
fn a_ruleset_for_another_table_is_refused_before_any_kernel_call() {
    let mut p = Proxy::new();
    p.applier.table = "other".into();
    let (svcs, slices) = web();
    let err = p.load(&svcs, &slices).unwrap_err();
    assert!(matches!(err, ApplyError::TableMismatch { .. }), "{err}");
    assert!(p.kernel().batches.is_empty());
}

#[test]
fn delete_removes_the_table_and_the_next_load_reads_back() {
    let mut p = Proxy::new();
    let (svcs, slices) = web();
    p.load(&svcs, &slices).unwrap();
    p.applier.delete().unwrap();
    assert_eq!(p.kernel().table, None);
    assert!(p.applier.needs_resync());
}
