//! Services beyond the shared fixtures: affinity, no endpoints, the tutorial's nginx.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::common::*;

/// `default/sticky`: ClientIP affinity (60 s), two endpoints.
pub fn sticky() -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = service(
        "default",
        "sticky",
        json!({
            "clusterIP": "10.96.0.50",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        }),
        None,
    );
    let sl = slice(
        "default",
        "sticky",
        "sticky-1",
        tcp_port("http", 8080),
        vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")],
    );
    (vec![svc], vec![sl])
}

/// `default/empty`: a LoadBalancer with an external IP and no endpoints at all.
pub fn empty() -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = service(
        "default",
        "empty",
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.60",
            "externalIPs": ["198.51.100.6"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30060, "protocol": "TCP"}]
        }),
        Some(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.60"}]}})),
    );
    (vec![svc], Vec::new())
}

/// The tutorial's `nginx-service` (ClusterIP) and `nginx-nodeport` (NodePort 30081) over
/// the same two nginx pods, with unnamed ports; a DNS-like UDP Service beside them.
pub fn tutorial() -> (Vec<Service>, Vec<EndpointSlice>) {
    let unnamed = json!([{"port": 80, "protocol": "TCP"}]);
    let pods = || vec![ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")];
    let svcs = vec![
        service(
            "default",
            "nginx-service",
            json!({"clusterIP": "10.96.0.80", "ports": [{"port": 80, "protocol": "TCP"}]}),
            None,
        ),
        service(
            "default",
            "nginx-nodeport",
            json!({"type": "NodePort", "clusterIP": "10.96.0.81",
                   "ports": [{"port": 80, "nodePort": 30081, "protocol": "TCP"}]}),
            None,
        ),
        service(
            "kube-system",
            "dns",
            json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
            None,
        ),
    ];
    let slices = vec![
        slice(
            "default",
            "nginx-service",
            "nginx-service-1",
            unnamed.clone(),
            pods(),
        ),
        slice(
            "default",
            "nginx-nodeport",
            "nginx-nodeport-1",
            unnamed,
            pods(),
        ),
        slice(
            "kube-system",
            "dns",
            "dns-1",
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}]),
            vec![ep("10.244.2.3", "node-b")],
        ),
    ];
    (svcs, slices)
}
