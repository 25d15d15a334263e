//! Service defaults (SetDefaults_Service). ClusterIP, nodePort and ipFamilies allocation are the
//! API server's, not defaulting's.

use serde_json::{json, Value};

use crate::json::{default_str, default_to, ensure, items, Obj};

pub fn service(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for p in items(spec, "ports") {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if unset {
            let port = p.get("port").cloned().unwrap_or(json!(0));
            p.insert("targetPort".into(), port);
        }
    }
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default_to(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_to(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // ServiceStatus.loadBalancer is a non-pointer struct: Go always encodes it.
    let status = ensure(obj, "status");
    default_to(status, "loadBalancer", json!({}));
    if ty == "LoadBalancer" {
        if let Some(lb) = status
            .get_mut("loadBalancer")
            .and_then(Value::as_object_mut)
        {
            for ing in items(lb, "ingress") {
                if ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty())
                {
                    default_to(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

/// Endpoints ports default to TCP.
pub fn endpoints(obj: &mut Obj) {
    for subset in items(obj, "subsets") {
        for p in items(subset, "ports") {
            default_str(p, "protocol", "TCP");
        }
    }
}

/// EndpointSlice ports default to TCP (discovery/v1 SetDefaults_EndpointPort).
pub fn endpoint_slice(obj: &mut Obj) {
    for p in items(obj, "ports") {
        default_to(p, "protocol", json!("TCP"));
    }
}
