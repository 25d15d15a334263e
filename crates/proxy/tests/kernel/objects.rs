//! Services, EndpointSlices and settings shared by the tests.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::{NodeInfo, ProxyConfig};
use serde_json::json;

pub fn node() -> NodeInfo {
    NodeInfo {
        name: "node-a".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
        pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
    }
}

pub fn config() -> ProxyConfig {
    ProxyConfig::default()
}

/// A ClusterIP Service with one TCP port named "http".
pub fn service(ns: &str, name: &str, cluster_ip: Option<&str>, port: u16) -> Service {
    let mut spec = json!({"ports": [{"name": "http", "port": port, "protocol": "TCP"}]});
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// An EndpointSlice for `svc` with ready endpoints on node-a, port "http".
pub fn slice(ns: &str, svc: &str, ips: &[&str], port: u16, proto: &str) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "nodeName": "node-a", "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": ns,
            "name": format!("{svc}-1"),
            "labels": {"kubernetes.io/service-name": svc}
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": proto}],
        "endpoints": endpoints,
    }))
    .unwrap()
}
