use super::*;
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::Record;
use serde_json::json;

fn deployment(generation: i64, observed: i64, available: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "coredns", "namespace": "kube-system", "generation": generation},
        "status": {"observedGeneration": observed, "conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Available", "status": available},
        ]},
    }))
    .unwrap()
}

#[test]
fn available_needs_the_condition_for_the_current_generation() {
    assert!(deployment_available(&deployment(2, 2, "True")));
    assert!(!deployment_available(&deployment(2, 2, "False")));
    // Available for the previous spec only.
    assert!(!deployment_available(&deployment(3, 2, "True")));
    let fresh: Deployment =
        serde_json::from_value(json!({"metadata": {"name": "coredns", "generation": 1}})).unwrap();
    assert!(!deployment_available(&fresh));
}

#[test]
fn pods_are_described_with_their_states_and_events() {
    let pods: Vec<Pod> = serde_json::from_value(json!([
        {"metadata": {"name": "coredns-a"}, "spec": {"nodeName": "c-worker", "containers": []},
         "status": {"phase": "Pending", "containerStatuses": [
            {"name": "coredns", "ready": false, "restartCount": 2, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
        {"metadata": {"name": "coredns-b"}, "spec": {"containers": []}},
    ]))
    .unwrap();
    let events: Vec<Event> = serde_json::from_value(json!([
        {"metadata": {"name": "e1"}, "involvedObject": {"name": "coredns-b"},
         "type": "Warning", "reason": "FailedScheduling", "message": "0/3 nodes are available"},
        {"metadata": {"name": "e2"}, "involvedObject": {"name": "other"}, "reason": "Pulled"},
    ]))
    .unwrap();
    assert_eq!(
        describe_pods(&pods, &events),
        [
            "pod coredns-a on c-worker: Pending (coredns waiting: CrashLoopBackOff, 2 restarts)",
            "pod coredns-b on <unscheduled>: Pending",
            "  Warning FailedScheduling: 0/3 nodes are available",
        ]
    );
}

fn response(id: u16, code: ResponseCode, records: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.response_code = code;
    for r in records {
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}

#[test]
fn the_query_asks_for_an_a_record_with_recursion() {
    let q = Message::from_vec(&a_query(7, PROBE_NAME).unwrap()).unwrap();
    assert_eq!(q.metadata.id, 7);
    assert!(q.metadata.recursion_desired);
    assert_eq!(q.queries[0].name().to_ascii(), PROBE_NAME);
    assert_eq!(q.queries[0].query_type(), RecordType::A);
}

#[test]
fn answers_are_the_a_records_of_the_matching_response() {
    let name = Name::from_ascii(PROBE_NAME).unwrap();
    let records = vec![
        Record::from_rdata(name.clone(), 5, RData::CNAME(CNAME(name.clone()))),
        Record::from_rdata(name, 5, RData::A(A::new(10, 96, 0, 1))),
    ];
    let ok = response(7, ResponseCode::NoError, records);
    assert_eq!(a_answers(7, &ok).unwrap(), [Ipv4Addr::new(10, 96, 0, 1)]);
    assert!(a_answers(8, &ok).is_err(), "another query's response");
    let nx = response(7, ResponseCode::NXDomain, vec![]);
    assert!(a_answers(7, &nx)
        .unwrap_err()
        .to_string()
        .contains("answered"));
    assert!(a_answers(7, b"\x00").is_err());
}
