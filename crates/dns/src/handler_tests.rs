use std::sync::{Arc, RwLock};
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_dns_zone::hickory_proto::op::{Message, Query, ResponseCode};
use kinet_dns_zone::hickory_proto::rr::{Name, RecordType};
use kinet_dns_zone::ClusterView;
use serde_json::json;

use super::{Handler, Step, MAX_FORWARDS_IN_FLIGHT};
use crate::metrics::{Metrics, Proto};

fn view() -> ClusterView {
    let mut v = ClusterView::new("cluster.local").unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.20"},
    }))
    .unwrap();
    v.upsert_service(&svc);
    let headless: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "huge"},
        "spec": {"clusterIP": "None"},
    }))
    .unwrap();
    v.upsert_service(&headless);
    // 5000 A records are ~80 KB: more than a TCP message can carry.
    let endpoints: Vec<_> = (0..5000)
        .map(|i| json!({"addresses": [format!("10.{}.{}.{}", 100 + i / 62500, (i / 250) % 250, i % 250 + 1)], "conditions": {"ready": true}}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "huge-1",
                     "labels": {"kubernetes.io/service-name": "huge"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
    }))
    .unwrap();
    v.upsert_slice(&slice);
    v
}

fn handler(upstreams: &[&str]) -> Handler {
    Handler::new(
        Arc::new(RwLock::new(view())),
        Arc::new(Metrics::new()),
        upstreams.iter().map(|u| u.parse().unwrap()).collect(),
        16,
    )
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

fn local(h: &Handler, bytes: &[u8], proto: Proto) -> Result<Message, &'static str> {
    match h.local(bytes, proto, Instant::now()) {
        Step::Done(Some(out)) => Ok(Message::from_vec(&out).unwrap()),
        Step::Done(None) => Err("dropped"),
        Step::Forward(..) => Err("forward"),
    }
}

#[test]
fn junk_is_formerr_and_responses_are_dropped() {
    let h = handler(&[]);
    let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    junk.extend_from_slice(&[0xff; 5]);
    let resp = local(&h, &junk, Proto::Udp).unwrap();
    assert_eq!(resp.id, 0x1234);
    assert_eq!(resp.response_code, ResponseCode::FormErr);

    let mut answer = query("web.default.svc.cluster.local.", RecordType::A);
    answer[2] |= 0x80;
    assert_eq!(local(&h, &answer, Proto::Udp), Err("dropped"));
    assert_eq!(local(&h, &[0; 5], Proto::Udp), Err("dropped"));
}

#[test]
fn what_gets_forwarded() {
    let h = handler(&["127.0.0.1:5353"]);
    let fwd = |name: &str, t| local(&h, &query(name, t), Proto::Udp).err() == Some("forward");
    assert!(fwd("example.com.", RecordType::A));
    assert!(
        fwd("1.2.0.192.in-addr.arpa.", RecordType::PTR),
        "reverse names we do not own"
    );
    assert!(
        !fwd("20.0.96.10.in-addr.arpa.", RecordType::PTR),
        "a cluster IP is ours"
    );
    assert!(
        !fwd("nope.default.svc.cluster.local.", RecordType::A),
        "NXDOMAIN is ours"
    );
    assert!(
        !fwd("example.com.", RecordType::AXFR),
        "no zone transfers upstream"
    );

    let none = handler(&[]);
    let resp = local(&none, &query("example.com.", RecordType::A), Proto::Udp).unwrap();
    assert_eq!(resp.response_code, ResponseCode::Refused);
}

#[test]
fn tcp_answers_fit_the_length_prefix() {
    let h = handler(&[]);
    let q = query("huge.default.svc.cluster.local.", RecordType::A);
    let out = match h.local(&q, Proto::Tcp, Instant::now()) {
        Step::Done(Some(out)) => out,
        _ => panic!("answered locally"),
    };
    assert!(out.len() <= usize::from(u16::MAX), "{}", out.len());
    let resp = Message::from_vec(&out).unwrap();
    assert!(resp.truncation);
    // hickory compresses only the first 120 names, so ~1500 of the 5000 fit.
    assert!(resp.answers.len() > 1000, "{}", resp.answers.len());

    let udp = local(&h, &q, Proto::Udp).unwrap();
    assert!(udp.truncation);
    assert!(udp.to_vec().unwrap().len() <= 512, "no EDNS: 512 bytes");
}

#[test]
fn forwards_in_flight_are_bounded() {
    let h = handler(&["127.0.0.1:5353"]);
    let q = query("example.com.", RecordType::A);
    let mut held: Vec<Step> = (0..MAX_FORWARDS_IN_FLIGHT)
        .map(|_| h.local(&q, Proto::Udp, Instant::now()))
        .collect();
    assert!(held.iter().all(|s| matches!(s, Step::Forward(..))));
    let over = local(&h, &q, Proto::Udp).unwrap();
    assert_eq!(over.response_code, ResponseCode::Refused);
    held.pop();
    assert_eq!(
        local(&h, &q, Proto::Udp).err(),
        Some("forward"),
        "a finished forward frees its place"
    );
}

#[test]
fn reused_answers_follow_the_view_and_the_callers_id() {
    let view = Arc::new(RwLock::new(view()));
    let metrics = Arc::new(Metrics::new());
    let h = Handler::new(view.clone(), metrics.clone(), Vec::new(), 16);
    let mut q = query("api.default.svc.cluster.local.", RecordType::A);
    let first = local(&h, &q, Proto::Udp).unwrap();
    assert_eq!(first.response_code, ResponseCode::NXDomain);
    // Same question, other ID: answered from the cache, under the new ID.
    q[..2].copy_from_slice(&7u16.to_be_bytes());
    let again = local(&h, &q, Proto::Udp).unwrap();
    assert_eq!(again.id, 7);
    assert_eq!(again.response_code, ResponseCode::NXDomain);
    assert_eq!(again.authorities, first.authorities);

    // The Service appears: the next answer sees it at once.
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "api"},
        "spec": {"clusterIP": "10.96.0.30"},
    }))
    .unwrap();
    view.write().unwrap().upsert_service(&svc);
    let now = local(&h, &q, Proto::Udp).unwrap();
    assert_eq!(now.response_code, ResponseCode::NoError);
    assert_eq!(now.answers[0].data.to_string(), "10.96.0.30");
    assert_eq!(local(&h, &q, Proto::Udp).unwrap().answers, now.answers);

    // Every query is counted, hits included.
    assert_eq!(metrics.responses(ResponseCode::NoError), 2);
    assert_eq!(metrics.responses(ResponseCode::NXDomain), 2);
}

#[test]
fn the_answer_cache_copies_the_response_into_the_callers_buffer() {
    let h = handler(&[]);
    // SRV needs hickory, so it goes through the answer cache.
    let mut q = query("web.default.svc.cluster.local.", RecordType::SRV);
    let mut out = vec![0xee; 3];
    assert!(
        !h.quick(&q, Proto::Udp, Instant::now(), &mut out),
        "nothing answered yet"
    );
    let Step::Done(Some(first)) = h.local(&q, Proto::Udp, Instant::now()) else {
        panic!("answered locally");
    };
    q[..2].copy_from_slice(&[0xab, 0xcd]);
    assert!(h.quick(&q, Proto::Udp, Instant::now(), &mut out));
    assert_eq!(&out[..2], &[0xab, 0xcd]);
    assert_eq!(&out[2..], &first[2..], "same response, only the ID differs");
    // Another transport, or a response sent to us, never hits.
    assert!(!h.quick(&q, Proto::Tcp, Instant::now(), &mut out));
    q[2] |= 0x80;
    assert!(!h.quick(&q, Proto::Udp, Instant::now(), &mut out));
}

#[test]
fn plain_questions_are_answered_from_the_wire_and_counted() {
    let view = Arc::new(RwLock::new(view()));
    let metrics = Arc::new(Metrics::new());
    let h = Handler::new(view.clone(), metrics.clone(), Vec::new(), 16);
    let q = query("WEB.default.svc.cluster.local.", RecordType::A);
    let mut out = Vec::new();
    // Answered on first sight, no answer cache involved.
    assert!(h.quick(&q, Proto::Udp, Instant::now(), &mut out));
    let resp = Message::from_vec(&out).unwrap();
    assert_eq!(resp.id, 4242);
    assert_eq!(resp.answers[0].data.to_string(), "10.96.0.20");
    assert_eq!(
        resp.answers[0].name.to_string(),
        "WEB.default.svc.cluster.local."
    );
    let missing = query("nope.default.svc.cluster.local.", RecordType::AAAA);
    assert!(h.quick(&missing, Proto::Tcp, Instant::now(), &mut out));
    assert_eq!(
        Message::from_vec(&out).unwrap().response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(metrics.responses(ResponseCode::NoError), 1);
    assert_eq!(metrics.responses(ResponseCode::NXDomain), 1);
    // Too large for UDP without EDNS: the full path truncates it.
    let huge = query("huge.default.svc.cluster.local.", RecordType::A);
    assert!(!h.quick(&huge, Proto::Udp, Instant::now(), &mut out));
}

#[test]
fn question_type_from_the_wire() {
    let q = query("web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(super::question_type(&q), Some(RecordType::SRV));
    assert_eq!(super::question_type(&q[..20]), None);
}
