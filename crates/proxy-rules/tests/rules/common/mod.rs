//! Fixtures shared by the integration tests: a small cluster of three nodes
//! (node-a 192.168.0.2 / 10.244.1.0/24, node-b .3 / 10.244.2.0/24, node-c .4 /
//! 10.244.3.0/24) and builders for Services and EndpointSlices.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_rules::{NodeInfo, ProxyConfig};
use serde_json::{json, Value};

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn node(name: &str) -> NodeInfo {
    let (node_ip, pod_cidr) = match name {
        "node-a" => ("192.168.0.2", "10.244.1.0/24"),
        "node-b" => ("192.168.0.3", "10.244.2.0/24"),
        _ => ("192.168.0.4", "10.244.3.0/24"),
    };
    NodeInfo {
        name: name.into(),
        node_ips: vec![ip(node_ip)],
        pod_cidr: Some(pod_cidr.parse().unwrap()),
    }
}

pub fn config() -> ProxyConfig {
    ProxyConfig::default()
}

/// A Service from its `spec` (and optional `status`) as JSON.
pub fn service(ns: &str, name: &str, spec: Value, status: Option<Value>) -> Service {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    serde_json::from_value(v).unwrap()
}

/// A plain ClusterIP service with one TCP port.
pub fn cluster_ip(ns: &str, name: &str, cip: &str, port_name: &str, port: u16) -> Service {
    service(
        ns,
        name,
        json!({"clusterIP": cip, "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}),
        None,
    )
}

/// An endpoint entry: ready (and serving), not terminating.
pub fn ep(addr: &str, node: &str) -> Value {
    json!({"addresses": [addr], "nodeName": node, "conditions": {"ready": true}})
}

/// An endpoint with explicit conditions.
pub fn ep_cond(addr: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Value {
    json!({
        "addresses": [addr],
        "nodeName": node,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating}
    })
}

/// An IPv4 EndpointSlice for `svc` with the given ports and endpoints.
pub fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    ports: Value,
    endpoints: Vec<Value>,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": ns,
            "name": name,
            "labels": {"kubernetes.io/service-name": svc}
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// One named TCP port for a slice.
pub fn tcp_port(name: &str, port: u16) -> Value {
    json!([{"name": name, "port": port, "protocol": "TCP"}])
}

/// `default/web`: ClusterIP 10.96.0.20:80 (port "http") with endpoints
/// 10.244.1.5:8080 on node-a, 10.244.2.7:8080 and 10.244.2.8:8080 on node-b,
/// plus a not-ready 10.244.2.9 that must be ignored.
pub fn web() -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = cluster_ip("default", "web", "10.96.0.20", "http", 80);
    let sl = slice(
        "default",
        "web",
        "web-abc",
        tcp_port("http", 8080),
        vec![
            ep("10.244.1.5", "node-a"),
            ep("10.244.2.7", "node-b"),
            ep("10.244.2.8", "node-b"),
            ep_cond("10.244.2.9", "node-b", false, false, false),
        ],
    );
    (vec![svc], vec![sl])
}

/// `default/edge`: LoadBalancer with NodePort 30080, LB IP 203.0.113.10,
/// external IP 198.51.100.5, ClusterIP 10.96.0.30:80, with the given
/// externalTrafficPolicy; endpoints 10.244.1.5:8080 (node-a) and
/// 10.244.2.7:8080 (node-b).
pub fn edge(policy: &str) -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = service(
        "default",
        "edge",
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.30",
            "externalIPs": ["198.51.100.5"],
            "externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]
        }),
        Some(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}})),
    );
    let sl = slice(
        "default",
        "edge",
        "edge-1",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    (vec![svc], vec![sl])
}

/// `default/guarded`: LoadBalancer 203.0.113.70:80 (NodePort 30070, ClusterIP 10.96.0.70)
/// open only to loadBalancerSourceRanges 172.16.0.0/24 and 192.168.0.0/30 (which holds
/// node-a and node-b, not node-c); endpoints 10.244.1.5:8080 (node-a) and 10.244.2.7:8080
/// (node-b).
pub fn guarded() -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = service(
        "default",
        "guarded",
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.70",
            "loadBalancerSourceRanges": ["172.16.0.0/24", " 192.168.0.0/30 "],
            "ports": [{"name": "http", "port": 80, "nodePort": 30070, "protocol": "TCP"}]
        }),
        Some(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.70"}]}})),
    );
    let sl = slice(
        "default",
        "guarded",
        "guarded-1",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    (vec![svc], vec![sl])
}
