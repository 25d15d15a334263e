//! Table-driven answers per record type against a small typed cluster.

use super::*;
use crate::testutil::{ready, service, slice};
use serde_json::json;

/// A cluster like a fresh kinet one plus a few workloads.
pub(crate) fn cluster() -> ClusterView {
    let mut v = ClusterView::new("cluster.local").unwrap();
    let svcs = [
        (
            "default",
            "kubernetes",
            json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}),
        ),
        (
            "kube-system",
            "kube-dns",
            json!({"clusterIP": "10.96.0.10", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
            ]}),
        ),
        (
            "default",
            "web",
            json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
        ),
        (
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
        (
            "default",
            "alias",
            json!({"type": "ExternalName", "externalName": "kubernetes.default.svc.cluster.local"}),
        ),
        (
            "default",
            "dual",
            json!({"clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30", "fd00::30"], "ports": [{"name": "http", "port": 8080}]}),
        ),
    ];
    for (ns, name, spec) in svcs {
        v.upsert_service(&service(ns, name, spec));
    }
    v.upsert_slice(&slice(
        "default",
        "web-a",
        "web",
        "IPv4",
        json!([{"name": "http", "port": 8080}]),
        ready(&[
            ("10.244.1.5", Some("web-0")),
            ("10.244.2.6", None),
            ("10.244.3.7", None),
        ]),
    ));
    v
}

pub(crate) fn q(name: &str) -> Name {
    Name::from_ascii(name).unwrap()
}

/// Answer rdata rendered as text, sorted, for stable comparisons.
pub(crate) fn rdata(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
    out.sort();
    out
}

#[test]
fn positive_answers_by_type() {
    let v = cluster();
    let cases: &[(&str, RecordType, &[&str])] = &[
        (
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
            &["10.96.0.1"],
        ),
        (
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A,
            &["10.96.0.10"],
        ),
        (
            "dual.default.svc.cluster.local.",
            RecordType::A,
            &["10.96.0.30"],
        ),
        (
            "dual.default.svc.cluster.local.",
            RecordType::AAAA,
            &["fd00::30"],
        ),
        (
            "web.default.svc.cluster.local.",
            RecordType::A,
            &["10.244.1.5", "10.244.2.6", "10.244.3.7"],
        ),
        (
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
            &["10.244.1.5"],
        ),
        (
            "10-244-2-6.web.default.svc.cluster.local.",
            RecordType::A,
            &["10.244.2.6"],
        ),
        (
            "10-244-1-5.default.pod.cluster.local.",
            RecordType::A,
            &["10.244.1.5"],
        ),
        (
            "fd00--5.default.pod.cluster.local.",
            RecordType::AAAA,
            &["fd00::5"],
        ),
        (
            "ext.default.svc.cluster.local.",
            RecordType::CNAME,
            &["example.com."],
        ),
        (
            "ext.default.svc.cluster.local.",
            RecordType::A,
            &["example.com."],
        ),
        ("dns-version.cluster.local.", RecordType::TXT, &["1.1.0"]),
        ("cluster.local.", RecordType::NS, &["ns.dns.cluster.local."]),
        ("ns.dns.cluster.local.", RecordType::A, &["10.96.0.10"]),
        (
            "_https._tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV,
            &["0 100 443 kubernetes.default.svc.cluster.local."],
        ),
        (
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
            &["0 50 53 kube-dns.kube-system.svc.cluster.local."],
        ),
        (
            "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
            &["0 100 53 kube-dns.kube-system.svc.cluster.local."],
        ),
        (
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            &[
                "0 33 8080 10-244-2-6.web.default.svc.cluster.local.",
                "0 33 8080 10-244-3-7.web.default.svc.cluster.local.",
                "0 33 8080 web-0.web.default.svc.cluster.local.",
            ],
        ),
    ];
    for (name, qtype, want) in cases {
        let a = answer(&v, &q(name), *qtype);
        assert_eq!(a.rcode, ResponseCode::NoError, "{name} {qtype}");
        assert!(a.authoritative && a.in_zone, "{name} {qtype}");
        assert!(a.authority.is_empty(), "{name} {qtype}");
        assert_eq!(rdata(&a.answers), *want, "{name} {qtype}");
        assert!(
            a.answers.iter().all(|r| r.name == q(name)),
            "owner is qname"
        );
    }
}

#[test]
fn negative_answers() {
    let v = cluster();
    use ResponseCode::{NXDomain as NX, NoError as NO};
    let cases: &[(&str, RecordType, ResponseCode)] = &[
        ("missing.default.svc.cluster.local.", RecordType::A, NX),
        ("kubernetes.nope.svc.cluster.local.", RecordType::A, NX),
        (
            "kubernetes.default.svc.cluster.local.",
            RecordType::AAAA,
            NO,
        ),
        ("kubernetes.default.svc.cluster.local.", RecordType::TXT, NO),
        ("kubernetes.default.svc.cluster.local.", RecordType::MX, NO),
        ("kubernetes.default.svc.cluster.local.", RecordType::PTR, NO),
        (
            "_http._tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV,
            NX,
        ),
        (
            "_tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV,
            NO,
        ),
        ("nope.web.default.svc.cluster.local.", RecordType::A, NX),
        ("web-0.ext.default.svc.cluster.local.", RecordType::A, NX),
        ("default.svc.cluster.local.", RecordType::A, NO),
        ("empty.svc.cluster.local.", RecordType::A, NX),
        ("svc.cluster.local.", RecordType::A, NO),
        ("cluster.local.", RecordType::A, NO),
        ("dns-version.cluster.local.", RecordType::A, NO),
        ("foo.cluster.local.", RecordType::A, NX),
        (
            "10-244-1-5.default.pod.cluster.local.",
            RecordType::AAAA,
            NO,
        ),
        ("not-an-ip.default.pod.cluster.local.", RecordType::A, NX),
        ("a.b.c.d.e.f.svc.cluster.local.", RecordType::A, NX),
    ];
    for (name, qtype, rcode) in cases {
        let a = answer(&v, &q(name), *qtype);
        assert_eq!(a.rcode, *rcode, "{name} {qtype}");
        assert!(
            a.answers.is_empty() && a.in_zone && a.authoritative,
            "{name} {qtype}"
        );
        assert_eq!(a.authority.len(), 1, "{name}: SOA in authority");
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    }
}

#[test]
fn soa_matches_coredns() {
    let mut v = cluster();
    v.set_serial(1234);
    let a = answer(&v, &q("Cluster.Local."), RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    let r = &a.answers[0];
    assert_eq!(r.ttl, 5);
    assert_eq!(r.name.to_ascii(), "cluster.local.");
    assert_eq!(
        r.data.to_string(),
        "ns.dns.cluster.local. hostmaster.cluster.local. 1234 7200 1800 86400 5"
    );
}

#[test]
fn ns_has_glue() {
    let v = cluster();
    let a = answer(&v, &q("cluster.local."), RecordType::NS);
    assert_eq!(rdata(&a.additionals), ["10.96.0.10"]);
    assert_eq!(a.additionals[0].name.to_ascii(), "ns.dns.cluster.local.");
}

#[test]
fn srv_additionals_carry_addresses() {
    let v = cluster();
    let a = answer(
        &v,
        &q("_http._tcp.web.default.svc.cluster.local."),
        RecordType::SRV,
    );
    assert_eq!(
        rdata(&a.additionals),
        ["10.244.1.5", "10.244.2.6", "10.244.3.7"]
    );
    let web0 = a
        .additionals
        .iter()
        .find(|r| r.data.to_string() == "10.244.1.5")
        .unwrap();
    assert_eq!(web0.name.to_ascii(), "web-0.web.default.svc.cluster.local.");

    let a = answer(&v, &q("dual.default.svc.cluster.local."), RecordType::SRV);
    // Dual-stack: one SRV per port, both addresses as glue.
    assert_eq!(
        rdata(&a.answers),
        ["0 50 8080 dual.default.svc.cluster.local."]
    );
    assert_eq!(rdata(&a.additionals), ["10.96.0.30", "fd00::30"]);
}

#[test]
fn in_zone_cname_is_chased() {
    let v = cluster();
    let a = answer(&v, &q("alias.default.svc.cluster.local."), RecordType::A);
    let got: Vec<(RecordType, String)> = a
        .answers
        .iter()
        .map(|r| (r.record_type(), r.data.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                RecordType::CNAME,
                "kubernetes.default.svc.cluster.local.".to_string()
            ),
            (RecordType::A, "10.96.0.1".to_string()),
        ]
    );
}

#[test]
fn cname_loop_is_not_followed_forever() {
    let mut v = cluster();
    for (name, target) in [("a", "b"), ("b", "a"), ("self", "self")] {
        v.upsert_service(&service(
            "loop",
            name,
            json!({"type": "ExternalName", "externalName": format!("{target}.loop.svc.cluster.local")}),
        ));
    }
    let a = answer(&v, &q("a.loop.svc.cluster.local."), RecordType::A);
    assert_eq!(a.answers.len(), MAX_CHASE + 1);
    let s = answer(&v, &q("self.loop.svc.cluster.local."), RecordType::A);
    assert!(s.answers.is_empty());
    assert_eq!(s.rcode, ResponseCode::NoError);
}

#[test]
fn case_insensitive_and_echoed() {
    let v = cluster();
    let name = q("KUBERNETES.Default.SVC.cluster.LOCAL.");
    let a = answer(&v, &name, RecordType::A);
    assert_eq!(rdata(&a.answers), ["10.96.0.1"]);
    assert!(a.answers[0].name.eq_case(&name));
}

#[test]
fn out_of_zone_is_refused() {
    let v = cluster();
    for name in [
        "example.com.",
        "local.",
        "8.8.8.8.in-addr.arpa.",
        "10.in-addr.arpa.",
    ] {
        let a = answer(&v, &q(name), RecordType::A);
        assert!(!a.in_zone, "{name}");
        assert_eq!(a.rcode, ResponseCode::Refused, "{name}");
    }
}

#[test]
fn ttl_is_configurable() {
    let mut v = cluster();
    let a = answer(
        &v,
        &q("kubernetes.default.svc.cluster.local."),
        RecordType::A,
    );
    assert_eq!(a.answers[0].ttl, 5);
    v.set_ttl(30);
    let a = answer(
        &v,
        &q("kubernetes.default.svc.cluster.local."),
        RecordType::A,
    );
    assert_eq!(a.answers[0].ttl, 30);
}

#[test]
fn other_zone_name() {
    let mut v = ClusterView::new("kinet.test").unwrap();
    v.upsert_service(&service(
        "default",
        "kubernetes",
        json!({"clusterIP": "10.96.0.1"}),
    ));
    let a = answer(&v, &q("kubernetes.default.svc.kinet.test."), RecordType::A);
    assert_eq!(rdata(&a.answers), ["10.96.0.1"]);
    let a = answer(
        &v,
        &q("kubernetes.default.svc.cluster.local."),
        RecordType::A,
    );
    assert!(!a.in_zone);
}
