use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_dns_zone::hickory_proto::op::ResponseCode;
use kinet_dns_zone::hickory_proto::rr::{Name, RecordType};
use kinet_dns_zone::{answer, ClusterView};
use kube::runtime::watcher::Event;
use serde_json::json;

use super::Mirror;

fn service(ns: &str, name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
    }))
    .unwrap()
}

fn lookup(view: &ClusterView, q: &str) -> (ResponseCode, Vec<IpAddr>) {
    let a = answer(view, &Name::from_ascii(q).unwrap(), RecordType::A);
    let ips = a.answers.iter().filter_map(|r| r.data.ip_addr()).collect();
    (a.rcode, ips)
}

#[test]
fn relist_removes_what_was_not_listed_again() {
    let mut view = ClusterView::new("cluster.local").unwrap();
    let mut m = Mirror::<Service>::new();
    assert!(!m.on_event(&mut view, Event::Init));
    m.on_event(
        &mut view,
        Event::InitApply(service("default", "a", "10.96.0.5")),
    );
    m.on_event(
        &mut view,
        Event::InitApply(service("default", "b", "10.96.0.6")),
    );
    assert!(
        m.on_event(&mut view, Event::InitDone),
        "first sync reported"
    );
    m.on_event(
        &mut view,
        Event::Apply(service("default", "c", "10.96.0.7")),
    );
    assert_eq!(lookup(&view, "c.default.svc.cluster.local.").1.len(), 1);

    // The watch restarts; "a" is gone and "b" moved. During the relist the old
    // state keeps answering.
    m.on_event(&mut view, Event::Init);
    m.on_event(
        &mut view,
        Event::InitApply(service("default", "b", "10.96.0.9")),
    );
    m.on_event(
        &mut view,
        Event::InitApply(service("default", "c", "10.96.0.7")),
    );
    let (rcode, _) = lookup(&view, "a.default.svc.cluster.local.");
    assert_eq!(rcode, ResponseCode::NoError, "still served mid-relist");
    assert!(
        !m.on_event(&mut view, Event::InitDone),
        "only the first sync counts"
    );
    assert_eq!(
        lookup(&view, "a.default.svc.cluster.local.").0,
        ResponseCode::NXDomain
    );
    assert_eq!(
        lookup(&view, "b.default.svc.cluster.local.").1,
        vec!["10.96.0.9".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(view.service_count(), 2);
}

#[test]
fn deletes_and_slices() {
    let mut view = ClusterView::new("cluster.local").unwrap();
    let mut svcs = Mirror::<Service>::new();
    let mut slices = Mirror::<EndpointSlice>::new();
    svcs.on_event(&mut view, Event::Apply(service("default", "db", "None")));
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "db-x",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
    }))
    .unwrap();
    slices.on_event(&mut view, Event::Apply(slice.clone()));
    assert_eq!(
        lookup(&view, "db.default.svc.cluster.local.").1,
        vec!["10.244.0.5".parse::<IpAddr>().unwrap()]
    );
    slices.on_event(&mut view, Event::Delete(slice));
    assert!(lookup(&view, "db.default.svc.cluster.local.").1.is_empty());
    svcs.on_event(&mut view, Event::Delete(service("default", "db", "None")));
    assert_eq!(
        lookup(&view, "db.default.svc.cluster.local.").0,
        ResponseCode::NXDomain
    );
}
