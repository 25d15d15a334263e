//! Services, EndpointSlices and settings shared by the tests.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::{Applier, ApplyOutcome, NodeInfo, ProxyConfig, Renderer};

use crate::support::Netns;
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

/// The proxy's own path, as its sync loop takes it: a Renderer's syncs (node-a's, default
/// config) loaded by an Applier into `ns`.
pub struct Proxy {
    pub renderer: Renderer,
    pub applier: Applier,
}

impl Proxy {
    pub fn new(ns: &Netns) -> Proxy {
        Proxy {
            renderer: Renderer::new(&node(), &config()),
            applier: Applier::new(ns.path(), "kinet"),
        }
    }

    /// Syncs the Renderer to `services` and `slices` and loads the result.
    pub fn load(&mut self, services: &[Service], slices: &[EndpointSlice]) -> ApplyOutcome {
        let synced = self.renderer.sync(services, slices);
        self.applier
            .apply_synced(&self.renderer, synced)
            .unwrap_or_else(|e| panic!("load: {e}"))
    }
}

impl Proxy {
    /// A forced resync with `services` and `slices`: how many changes it sent.
    pub fn resync(&mut self, services: &[Service], slices: &[EndpointSlice]) -> usize {
        self.applier.force_resync();
        match self.load(services, slices) {
            ApplyOutcome::Applied {
                full: true,
                changes,
                ..
            } => changes,
            other => panic!("expected a verified load, got {other:?}"),
        }
    }
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

pub fn sticky_nodeport(name: &str, ip: &str, node_port: u16) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"type": "NodePort", "clusterIP": ip, "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": node_port}]},
    }))
    .unwrap()
}

fn udp_service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 53, "protocol": "UDP"}]},
    }))
    .unwrap()
}

/// A sequence of cluster states: endpoints come and go, a Service with affinity and a
/// NodePort appears, one loses all endpoints, a UDP Service appears, Services vanish.
pub fn steps() -> Vec<(Vec<Service>, Vec<EndpointSlice>)> {
    let web = service("default", "web", Some("10.96.0.20"), 80);
    let api = sticky_nodeport("api", "10.96.0.21", 30080);
    let lonely = service("default", "lonely", Some("10.96.0.22"), 80);
    let dns = udp_service("dns", "10.96.0.10");
    vec![
        (
            vec![web.clone(), lonely.clone()],
            vec![slice(
                "default",
                "web",
                &["10.244.1.5", "10.244.1.6"],
                8080,
                "TCP",
            )],
        ),
        // An endpoint leaves, a service with affinity and a NodePort appears.
        (
            vec![web.clone(), lonely.clone(), api.clone()],
            vec![
                slice("default", "web", &["10.244.1.5"], 8080, "TCP"),
                slice("default", "api", &["10.244.1.7", "10.244.1.8"], 9090, "TCP"),
            ],
        ),
        // lonely gets an endpoint, web loses all, api loses one and changes port.
        (
            vec![web.clone(), lonely.clone(), api.clone()],
            vec![
                slice("default", "lonely", &["10.244.1.9"], 8080, "TCP"),
                slice("default", "api", &["10.244.1.7"], 9091, "TCP"),
            ],
        ),
        // A UDP service appears.
        (
            vec![web.clone(), lonely.clone(), api.clone(), dns.clone()],
            vec![
                slice("default", "lonely", &["10.244.1.9"], 8080, "TCP"),
                slice("default", "api", &["10.244.1.7"], 9091, "TCP"),
                slice(
                    "default",
                    "dns",
                    &["10.244.1.10", "10.244.1.11"],
                    5353,
                    "UDP",
                ),
            ],
        ),
        // Services vanish; web is back with one endpoint.
        (
            vec![web.clone(), dns.clone()],
            vec![
                slice("default", "web", &["10.244.1.5"], 8080, "TCP"),
                slice("default", "dns", &["10.244.1.11"], 5353, "UDP"),
            ],
        ),
    ]
}
