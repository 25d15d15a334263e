//! Message-level behaviour: flags, EDNS, error rcodes and truncation.

use super::*;
use crate::answer::tests::{cluster, q};
use crate::testutil::{service, slice};
use hickory_proto::op::Query;
use hickory_proto::rr::Name;
use serde_json::{json, Value};

fn request(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(q(name), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

#[test]
fn header_and_question_echo() {
    let v = cluster();
    let req = request("kubernetes.default.svc.cluster.local.", RecordType::A, None);
    let resp = respond(&v, &req, Some(512));
    assert_eq!(resp.id, 0x4242);
    assert_eq!(resp.message_type, MessageType::Response);
    assert!(resp.authoritative && resp.recursion_desired && resp.recursion_available);
    assert!(!resp.truncation);
    assert_eq!(resp.queries, req.queries);
    assert_eq!(resp.response_code, ResponseCode::NoError);
    assert_eq!(resp.answers.len(), 1);
    assert!(resp.edns.is_none(), "no OPT without one in the request");
    // Survives the wire.
    let back = Message::from_vec(&resp.to_vec().unwrap()).unwrap();
    assert_eq!(back.answers, resp.answers);
}

#[test]
fn rcodes() {
    let v = cluster();
    let mut multi = request("kubernetes.default.svc.cluster.local.", RecordType::A, None);
    multi.add_query(Query::query(
        q("web.default.svc.cluster.local."),
        RecordType::A,
    ));
    let mut none = request("x.", RecordType::A, None);
    none.queries.clear();
    let mut notify = request("cluster.local.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    let mut chaos = request("version.bind.", RecordType::TXT, None);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let mut is_response = request("cluster.local.", RecordType::SOA, None);
    is_response.metadata.message_type = MessageType::Response;

    let cases: Vec<(&str, Message, ResponseCode, bool)> = vec![
        (
            "in zone",
            request("kubernetes.default.svc.cluster.local.", RecordType::A, None),
            ResponseCode::NoError,
            true,
        ),
        (
            "nxdomain",
            request("missing.default.svc.cluster.local.", RecordType::A, None),
            ResponseCode::NXDomain,
            true,
        ),
        (
            "nodata",
            request(
                "kubernetes.default.svc.cluster.local.",
                RecordType::AAAA,
                None,
            ),
            ResponseCode::NoError,
            true,
        ),
        (
            "out of zone",
            request("example.com.", RecordType::A, None),
            ResponseCode::Refused,
            false,
        ),
        (
            "unknown reverse",
            request("8.8.8.8.in-addr.arpa.", RecordType::PTR, None),
            ResponseCode::Refused,
            false,
        ),
        ("multi question", multi, ResponseCode::FormErr, false),
        ("no question", none, ResponseCode::FormErr, false),
        ("notify", notify, ResponseCode::NotImp, false),
        ("chaos class", chaos, ResponseCode::Refused, false),
        (
            "axfr",
            request("cluster.local.", RecordType::AXFR, None),
            ResponseCode::Refused,
            false,
        ),
        ("qr set", is_response, ResponseCode::FormErr, false),
    ];
    for (what, req, rcode, aa) in cases {
        let resp = respond(&v, &req, None);
        assert_eq!(resp.response_code, rcode, "{what}");
        assert_eq!(resp.authoritative, aa, "{what}");
        assert_eq!(resp.id, 0x4242, "{what}");
        if rcode == ResponseCode::NXDomain
            || (rcode == ResponseCode::NoError && resp.answers.is_empty())
        {
            assert_eq!(resp.authorities[0].record_type(), RecordType::SOA, "{what}");
        }
    }
}

#[test]
fn edns_is_echoed_with_our_size() {
    let v = cluster();
    let req = request(
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    );
    let resp = respond(&v, &req, Some(1232));
    let edns = resp.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    let tcp = respond(&v, &req, None);
    assert_eq!(
        tcp.edns.as_ref().unwrap().max_payload(),
        DEFAULT_UDP_PAYLOAD
    );

    let mut v1 = req.clone();
    v1.edns.as_mut().unwrap().set_version(1);
    let resp = respond(&v, &v1, Some(1232));
    assert_eq!(resp.response_code, ResponseCode::BADVERS);
    // BADVERS (16, which decodes as its alias BADSIG) needs the OPT record
    // to carry its high bits.
    let back = Message::from_vec(&resp.to_vec().unwrap()).unwrap();
    assert_eq!(u16::from(back.response_code), 16);
}

/// A headless Service with `n` ready endpoints, each with a long hostname.
fn big_headless(n: usize) -> ClusterView {
    let mut v = cluster();
    v.upsert_service(&service(
        "default",
        "big",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
    ));
    let eps: Vec<Value> = (0..n)
        .map(|i| json!({"addresses": [format!("10.250.{}.{}", i / 250, i % 250 + 1)], "hostname": format!("a-rather-long-hostname-for-pod-{i:04}")}))
        .collect();
    v.upsert_slice(&slice(
        "default",
        "big-1",
        "big",
        "IPv4",
        json!([{"name": "http", "port": 80}]),
        Value::Array(eps),
    ));
    v
}

/// (qname, qtype, client EDNS size, our UDP limit, expect TC)
type TruncCase = (&'static str, RecordType, Option<u16>, Option<usize>, bool);

#[test]
fn truncation_over_udp() {
    let v = big_headless(100);
    let cases: Vec<TruncCase> = vec![
        // 100 A records = 1.6k+: too big for 512 and for 1232.
        (
            "big.default.svc.cluster.local.",
            RecordType::A,
            None,
            Some(1232),
            true,
        ),
        (
            "big.default.svc.cluster.local.",
            RecordType::A,
            Some(1232),
            Some(1232),
            true,
        ),
        (
            "big.default.svc.cluster.local.",
            RecordType::A,
            Some(4096),
            Some(4096),
            false,
        ),
        (
            "big.default.svc.cluster.local.",
            RecordType::A,
            Some(4096),
            None,
            false,
        ),
        (
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
            None,
            Some(512),
            false,
        ),
    ];
    for (name, qtype, edns, max_udp, tc) in cases {
        let resp = respond(&v, &request(name, qtype, edns), max_udp);
        assert_eq!(resp.truncation, tc, "{name} edns={edns:?} max={max_udp:?}");
        let len = resp.to_vec().unwrap().len();
        let limit = match (edns, max_udp) {
            (_, None) => usize::MAX,
            (None, Some(m)) => m.min(512),
            (Some(e), Some(m)) => m.min(usize::from(e)),
        };
        assert!(len <= limit, "{name}: {len} > {limit}");
        if tc {
            assert!(
                !resp.answers.is_empty() && resp.answers.len() < 100,
                "keeps what fits"
            );
        } else {
            assert_eq!(
                resp.answers.len(),
                if name.starts_with("big") { 100 } else { 1 }
            );
        }
    }
}

#[test]
fn additionals_dropped_before_answers() {
    let v = big_headless(20);
    let req = request(
        "_http._tcp.big.default.svc.cluster.local.",
        RecordType::SRV,
        None,
    );
    let full = respond(&v, &req, None);
    assert_eq!(full.additionals.len(), 20);
    let full_len = full.to_vec().unwrap().len();
    let mut no_extra = full.clone();
    no_extra.additionals.clear();
    let answers_len = no_extra.to_vec().unwrap().len();
    assert!(answers_len < full_len);

    let mut m = full.clone();
    assert!(
        !truncate(&mut m, answers_len),
        "SRV set fits without glue: no TC"
    );
    assert_eq!(m.answers.len(), 20);
    assert!(m.additionals.is_empty());

    let mut m = full;
    assert!(truncate(&mut m, answers_len - 1));
    assert_eq!(m.answers.len(), 19);
}

#[test]
fn wire_entry_point() {
    let v = cluster();
    let req = request(
        "Kubernetes.default.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    );
    let bytes = respond_wire(&v, &req.to_vec().unwrap(), Some(1232)).unwrap();
    let resp = Message::from_vec(&bytes).unwrap();
    assert_eq!(resp.answers.len(), 1);
    assert!(resp.answers[0]
        .name
        .eq_case(&Name::from_ascii("Kubernetes.default.svc.cluster.local.").unwrap()));

    // Header claims one question but the body is garbage: FORMERR with our id.
    let garbage = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let resp = Message::from_vec(&respond_wire(&v, &garbage, Some(512)).unwrap()).unwrap();
    assert_eq!(resp.id, 0xabcd);
    assert_eq!(resp.response_code, ResponseCode::FormErr);

    // Too short for a header, or a response: dropped.
    assert!(respond_wire(&v, &[1, 2, 3], Some(512)).is_none());
    let mut resp_bit = req.to_vec().unwrap();
    resp_bit[2] |= 0x80;
    assert!(respond_wire(&v, &resp_bit, Some(512)).is_none());
}
