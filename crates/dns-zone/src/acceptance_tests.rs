//! The acceptance list, plus scale.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use serde_json::json;

use crate::testutil::{ready, service, slice};
use crate::{answer, ClusterView};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a_records(v: &ClusterView, q: &str, t: RecordType) -> (ResponseCode, Vec<String>) {
    let a = answer(v, &name(q), t);
    let mut out: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
    out.sort();
    (a.rcode, out)
}

fn base_cluster() -> ClusterView {
    let mut v = ClusterView::new("cluster.local").unwrap();
    v.upsert_service(&service(
        "default",
        "kubernetes",
        json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}),
    ));
    v.upsert_service(&service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    ));
    v.upsert_service(&service(
        "default",
        "nginx",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
    ));
    v.upsert_slice(&slice(
        "default",
        "nginx-x1",
        "nginx",
        "IPv4",
        json!([{"name": "http", "port": 80}]),
        ready(&[
            ("10.244.1.2", None),
            ("10.244.2.3", None),
            ("10.244.3.4", None),
        ]),
    ));
    v.upsert_service(&service(
        "default",
        "search",
        json!({"type": "ExternalName", "externalName": "www.example.org"}),
    ));
    v
}

#[test]
fn acceptance_list() {
    let mut v = base_cluster();
    let ok = ResponseCode::NoError;
    let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    assert_eq!(
        a_records(&v, "kubernetes.default.svc.cluster.local.", RecordType::A),
        (ok, s(&["10.96.0.1"]))
    );
    assert_eq!(
        a_records(&v, "kube-dns.kube-system.svc.cluster.local.", RecordType::A),
        (ok, s(&["10.96.0.10"]))
    );
    // Headless: every ready pod IP, and one fewer after an endpoint goes.
    assert_eq!(
        a_records(&v, "nginx.default.svc.cluster.local.", RecordType::A),
        (ok, s(&["10.244.1.2", "10.244.2.3", "10.244.3.4"]))
    );
    v.upsert_slice(&slice(
        "default",
        "nginx-x1",
        "nginx",
        "IPv4",
        json!([{"name": "http", "port": 80}]),
        ready(&[("10.244.1.2", None), ("10.244.3.4", None)]),
    ));
    assert_eq!(
        a_records(&v, "nginx.default.svc.cluster.local.", RecordType::A),
        (ok, s(&["10.244.1.2", "10.244.3.4"]))
    );
    assert_eq!(
        a_records(
            &v,
            "_http._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV
        ),
        (
            ok,
            s(&[
                "0 50 80 10-244-1-2.nginx.default.svc.cluster.local.",
                "0 50 80 10-244-3-4.nginx.default.svc.cluster.local.",
            ])
        )
    );
    assert_eq!(
        a_records(&v, "search.default.svc.cluster.local.", RecordType::A),
        (ok, s(&["www.example.org."]))
    );
    assert_eq!(
        a_records(&v, "10-244-9-9.default.pod.cluster.local.", RecordType::A),
        (ok, s(&["10.244.9.9"]))
    );
    assert_eq!(
        a_records(&v, "1.0.96.10.in-addr.arpa.", RecordType::PTR),
        (ok, s(&["kubernetes.default.svc.cluster.local."]))
    );
    assert_eq!(
        a_records(&v, "nope.default.svc.cluster.local.", RecordType::A),
        (ResponseCode::NXDomain, s(&[]))
    );
    // Removing the Service makes it NXDOMAIN and frees its PTR.
    v.remove_service("default", "kubernetes");
    assert_eq!(
        a_records(&v, "kubernetes.default.svc.cluster.local.", RecordType::A).0,
        ResponseCode::NXDomain
    );
    assert!(!answer(&v, &name("1.0.96.10.in-addr.arpa."), RecordType::PTR).in_zone);
}

/// 10k Services across 100 namespaces answer correctly and quickly.
#[test]
fn ten_thousand_services() {
    let mut v = ClusterView::new("cluster.local").unwrap();
    let ip = |i: usize| format!("10.96.{}.{}", 1 + i / 250, i % 250 + 1);
    for i in 0..10_000 {
        v.upsert_service(&service(
            &format!("ns-{}", i % 100),
            &format!("svc-{i}"),
            json!({"clusterIP": ip(i), "ports": [{"name": "http", "port": 80}]}),
        ));
    }
    assert_eq!(v.service_count(), 10_000);
    // Answers at this size (their speed is `kinet bench dns`'s to measure).
    for i in (0..10_000).step_by(7) {
        let q = format!("svc-{i}.ns-{}.svc.cluster.local.", i % 100);
        let a = answer(&v, &name(&q), RecordType::A);
        assert_eq!(a.answers.len(), 1, "{q}");
        assert_eq!(a.answers[0].data.to_string(), ip(i), "{q}");
        // Wrong namespace: NXDOMAIN.
        let wrong = format!("svc-{i}.ns-{}.svc.cluster.local.", (i + 1) % 100);
        assert_eq!(
            answer(&v, &name(&wrong), RecordType::A).rcode,
            ResponseCode::NXDomain
        );
        // Reverse.
        let octets: Vec<String> = ip(i).split('.').rev().map(String::from).collect();
        let rev = format!("{}.in-addr.arpa.", octets.join("."));
        let p = answer(&v, &name(&rev), RecordType::PTR);
        assert_eq!(
            p.answers[0].data.to_string(),
            format!("svc-{i}.ns-{}.svc.cluster.local.", i % 100)
        );
    }

    for i in 0..10_000 {
        v.remove_service(&format!("ns-{}", i % 100), &format!("svc-{i}"));
    }
    assert_eq!(v.service_count(), 0);
    assert!(v.namespaces.is_empty() && v.service_ips.is_empty());
}
