//! The quick path must send exactly what the hickory path sends, for every
//! query it takes; these compare the two byte for byte.

use super::*;
use crate::answer::tests::cluster;
use crate::respond_wire;
use crate::testutil::{ready, service, slice};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use serde_json::json;

const UDP: Option<usize> = Some(DEFAULT_UDP_PAYLOAD as usize);

/// The shared fixture plus headless, dual-stack and odd Services.
fn view() -> ClusterView {
    let mut v = cluster();
    let svcs = [
        ("default", "v6", json!({"clusterIP": "fd00::7"})),
        ("default", "pending", json!({"clusterIP": ""})),
        (
            "default",
            "gone",
            json!({"type": "ExternalName", "externalName": "10.0.0.1"}),
        ),
        ("default", "empty", json!({"clusterIP": "None"})),
        (
            "default",
            "multi",
            json!({"clusterIP": "None", "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}),
        ),
        ("default", "big", json!({"clusterIP": "None"})),
        (
            "default",
            "unready",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
        ),
    ];
    for (ns, name, spec) in svcs {
        v.upsert_service(&service(ns, name, spec));
    }
    v.add_namespace("quiet");
    // Two slices, overlapping addresses, two ports: duplicates to drop.
    for (name, addrs) in [
        ("multi-1", vec!["10.1.0.1", "10.1.0.2", "fd00::1:1"]),
        ("multi-2", vec!["10.1.0.2", "10.1.0.3"]),
    ] {
        let eps: Vec<_> = addrs.iter().map(|a| (*a, None)).collect();
        let ports = json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}]);
        v.upsert_slice(&slice("default", name, "multi", "IPv4", ports, ready(&eps)));
    }
    let many: Vec<String> = (1..=60).map(|i| format!("10.2.0.{i}")).collect();
    let eps: Vec<_> = many.iter().map(|a| (a.as_str(), None)).collect();
    v.upsert_slice(&slice(
        "default",
        "big-1",
        "big",
        "IPv4",
        json!([]),
        ready(&eps),
    ));
    let not_ready = json!([{"addresses": ["10.3.0.1"], "conditions": {"ready": false}}]);
    v.upsert_slice(&slice(
        "default",
        "unready-1",
        "unready",
        "IPv4",
        json!([]),
        not_ready,
    ));
    v
}

fn request(name: &str, qtype: RecordType, edns: Option<u16>, rd: bool, cd: bool) -> Vec<u8> {
    let mut m = Message::new(0xbeef, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.metadata.checking_disabled = cd;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// Both paths on `query`: the quick answer (if taken) and the full one.
fn both(v: &ClusterView, query: &[u8], max_udp: Option<usize>) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut out = Vec::new();
    let quick = respond_fast(v, query, max_udp, &mut out).map(|rcode| {
        let parsed = Message::from_vec(&out).unwrap();
        assert_eq!(parsed.response_code, rcode);
        out.clone()
    });
    (quick, respond_wire(v, query, max_udp).unwrap())
}

/// Asserts the quick path took `query` and matched the full path exactly.
fn same(v: &ClusterView, query: &[u8], max_udp: Option<usize>, what: &str) -> Message {
    let (quick, full) = both(v, query, max_udp);
    let quick = quick.unwrap_or_else(|| panic!("{what}: not answered quickly"));
    if quick != full {
        panic!(
            "{what}: differs\nquick {:?}\nfull  {:?}\nquick {quick:02x?}\nfull  {full:02x?}",
            Message::from_vec(&quick),
            Message::from_vec(&full)
        );
    }
    Message::from_vec(&quick).unwrap()
}

/// Upper-cases the letters picked by `mask`, one bit per character.
fn cased(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| match mask >> (i % 64) & 1 {
            1 => c.to_ascii_uppercase(),
            _ => c,
        })
        .collect()
}

const QUICK_NAMES: &[&str] = &[
    "kubernetes.default.svc.cluster.local.",
    "dual.default.svc.cluster.local.",
    "v6.default.svc.cluster.local.",
    "pending.default.svc.cluster.local.",
    "web.default.svc.cluster.local.",
    "multi.default.svc.cluster.local.",
    "big.default.svc.cluster.local.",
    "unready.default.svc.cluster.local.",
    "empty.default.svc.cluster.local.",
    "gone.default.svc.cluster.local.",
    "missing.default.svc.cluster.local.",
    "missing.nowhere.svc.cluster.local.",
    "example.com.default.svc.cluster.local.",
    "example.com.svc.cluster.local.",
    "example.com.cluster.local.",
    "_http._tcp.missing.default.svc.cluster.local.",
    "a.b.c.d.e.f.cluster.local.",
    "default.svc.cluster.local.",
    "quiet.svc.cluster.local.",
    "nope.svc.cluster.local.",
    "svc.cluster.local.",
    "pod.cluster.local.",
    "default.pod.cluster.local.",
    "10-244-1-5.default.pod.cluster.local.",
    "fd00--1.default.pod.cluster.local.",
    "bad-pod.default.pod.cluster.local.",
    "foo.cluster.local.",
];

#[test]
fn quick_answers_are_the_full_paths_bytes() {
    let v = view();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::HTTPS,
    ];
    let mut checked = 0;
    for (n, name) in QUICK_NAMES.iter().enumerate() {
        for (t, qtype) in types.iter().enumerate() {
            for (e, edns) in [None, Some(1232), Some(4096), Some(100)].iter().enumerate() {
                let mask = ((n * 31 + t * 7 + e) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let name = if (n + t + e) % 3 == 0 {
                    cased(name, mask)
                } else {
                    name.to_string()
                };
                for (rd, cd) in [(true, false), (false, true)] {
                    let q = request(&name, *qtype, *edns, rd, cd);
                    for max_udp in [UDP, None] {
                        // UDP without EDNS cannot carry 60 addresses: that one truncates.
                        let tc = name.to_ascii_lowercase().starts_with("big.")
                            && *qtype == RecordType::A
                            && max_udp.is_some()
                            && edns.is_none_or(|e| e < 1232);
                        if tc {
                            assert_eq!(both(&v, &q, max_udp).0, None, "{name} truncates");
                            continue;
                        }
                        let what = format!("{name} {qtype} edns {edns:?} udp {max_udp:?}");
                        same(&v, &q, max_udp, &what);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn answers_look_right_as_messages() {
    let v = view();
    let q = request(
        "Multi.Default.SVC.cluster.local.",
        RecordType::A,
        Some(1232),
        true,
        false,
    );
    let m = same(&v, &q, UDP, "multi");
    let ips: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(
        ips,
        ["10.1.0.1", "10.1.0.2", "10.1.0.3"],
        "deduplicated, in order"
    );
    assert_eq!(
        m.answers[0].name.to_string(),
        "Multi.Default.SVC.cluster.local."
    );
    assert!(m.authoritative && m.recursion_available && m.recursion_desired);
    assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1232));

    let q = request(
        "missing.default.svc.cluster.local.",
        RecordType::A,
        None,
        true,
        false,
    );
    let m = same(&v, &q, UDP, "missing");
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert!(m.answers.is_empty() && m.edns.is_none());

    let q = request(
        "kubernetes.default.svc.cluster.local.",
        RecordType::AAAA,
        None,
        true,
        false,
    );
    let m = same(&v, &q, None, "nodata");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);

    let q = request(
        "big.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
        true,
        false,
    );
    assert_eq!(same(&v, &q, UDP, "big").answers.len(), 60);
}

#[test]
fn unusual_queries_take_the_full_path() {
    let v = view();
    let fast = |q: &[u8], max_udp| respond_fast(&v, q, max_udp, &mut Vec::new());
    let plain = |name: &str, t| request(name, t, None, true, false);
    let svc = "kubernetes.default.svc.cluster.local.";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("srv", plain(svc, RecordType::SRV)),
        ("ptr", plain("1.0.96.10.in-addr.arpa.", RecordType::PTR)),
        ("ptr type on a service", plain(svc, RecordType::PTR)),
        ("any", plain(svc, RecordType::ANY)),
        ("axfr", plain("cluster.local.", RecordType::AXFR)),
        ("apex", plain("cluster.local.", RecordType::A)),
        (
            "version",
            plain("dns-version.cluster.local.", RecordType::TXT),
        ),
        ("nameserver", plain("ns.dns.cluster.local.", RecordType::A)),
        (
            "external",
            plain("ext.default.svc.cluster.local.", RecordType::A),
        ),
        (
            "endpoint",
            plain("web-0.web.default.svc.cluster.local.", RecordType::A),
        ),
        (
            "port",
            plain("_http._tcp.web.default.svc.cluster.local.", RecordType::A),
        ),
        ("out of zone", plain("example.com.", RecordType::A)),
        (
            "wildcard",
            plain("*.default.svc.cluster.local.", RecordType::A),
        ),
        (
            "escaped",
            plain("a\\.b.default.svc.cluster.local.", RecordType::A),
        ),
    ];
    for (what, q) in cases {
        assert_eq!(fast(&q, UDP), None, "{what}");
    }

    let q = plain(svc, RecordType::A);
    let mut two = Message::from_vec(&q).unwrap();
    two.add_query(two.queries[0].clone());
    let mut notify = Message::from_vec(&q).unwrap();
    notify.metadata.op_code = OpCode::Notify;
    let mut chaos = Message::from_vec(&q).unwrap();
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let mut v1 = Message::from_vec(&request(svc, RecordType::A, Some(1232), true, false)).unwrap();
    v1.edns.as_mut().unwrap().set_version(1);
    let mut response = q.clone();
    response[2] |= 0x80;
    let mut trailing = q.clone();
    trailing.push(0);
    // The name as a pointer to itself's first label.
    let mut pointer = q[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let wire: Vec<(&str, Vec<u8>)> = vec![
        ("two questions", two.to_vec().unwrap()),
        ("notify", notify.to_vec().unwrap()),
        ("class CH", chaos.to_vec().unwrap()),
        ("EDNS version 1", v1.to_vec().unwrap()),
        ("a response", response),
        ("trailing bytes", trailing),
        ("pointer", pointer),
        ("short", q[..20].to_vec()),
        ("ECS option", with_opt(&q, &[0, 8, 0, 4, 0, 1, 0, 0])),
        ("cut option", with_opt(&q, &[0, 10, 0, 8, 1, 2])),
    ];
    for (what, q) in wire {
        assert_eq!(fast(&q, UDP), None, "{what}");
    }
}

/// `query` (without EDNS) with an OPT record of 1232 bytes carrying `options`.
fn with_opt(query: &[u8], options: &[u8]) -> Vec<u8> {
    let mut q = query.to_vec();
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0]);
    q.extend_from_slice(&(options.len() as u16).to_be_bytes());
    q.extend_from_slice(options);
    q
}

#[test]
fn cookies_and_do_bits_are_answered_like_hickory() {
    let v = view();
    let q = request(
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
        true,
        false,
    );
    // What dig sends: a client cookie, DO set in one case.
    let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let m = same(&v, &with_opt(&q, &cookie), UDP, "cookie");
    assert_eq!(m.answers.len(), 3);
    same(&v, &with_opt(&q, &[]), UDP, "OPT with DO, no options");
    same(&v, &with_opt(&q, &[0, 12, 0, 0]), None, "padding, TCP");
}

#[test]
fn random_names_and_cases_agree() {
    let v = view();
    let parts = [
        "kubernetes",
        "web",
        "multi",
        "big",
        "missing",
        "default",
        "quiet",
        "svc",
        "pod",
        "cluster",
        "local",
        "_http",
        "_tcp",
        "10-244-1-5",
        "dns",
        "ns",
        "x",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut quick = 0;
    for _ in 0..3000 {
        let n = (next() % 4 + 1) as usize;
        let mut labels: Vec<&str> = (0..n)
            .map(|_| parts[(next() % parts.len() as u64) as usize])
            .collect();
        labels.extend(
            ["svc", "cluster", "local"]
                .iter()
                .skip((next() % 2) as usize),
        );
        let name = cased(&format!("{}.", labels.join(".")), next());
        let qtype = [RecordType::A, RecordType::AAAA, RecordType::TXT][(next() % 3) as usize];
        let edns = (next() % 2 == 0).then_some(1232);
        let q = request(&name, qtype, edns, true, false);
        let (fast, full) = both(&v, &q, UDP);
        if let Some(fast) = fast {
            assert_eq!(fast, full, "{name} {qtype}");
            quick += 1;
        }
    }
    assert!(quick > 1500, "{quick} of 3000 answered quickly");
}
