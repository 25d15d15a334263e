//! From Kubernetes objects to the proxy's view: service ports and their
//! endpoints, with readiness and locality already decided.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Ipv4Cidr, Proto};

/// Label that ties an EndpointSlice to its Service.
pub(crate) use kinet_types::wellknown::SERVICE_NAME_LABEL;
/// Kubernetes' default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY_SECS: u32 = 10800;

/// One port of one Service, with everything the renderer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// Port name, "" when the port is unnamed.
    pub port_name: String,
    pub proto: Proto,
    pub port: u16,
    pub cluster_ip: Ipv4Addr,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    pub lb_ips: Vec<Ipv4Addr>,
    /// loadBalancerSourceRanges: when not empty, only these clients reach `lb_ips`.
    pub source_ranges: Vec<Ipv4Cidr>,
    /// externalTrafficPolicy: Local (only meaningful when externally accessible).
    pub external_local: bool,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    pub affinity_secs: Option<u32>,
}

impl ServicePort {
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.lb_ips.is_empty()
    }
    /// Cluster-wide endpoints are needed for Cluster internal policy, and for any
    /// external traffic (Local external policy still short-circuits pod traffic).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible()
    }
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || (self.external_local && self.externally_accessible())
    }
    /// `ns/name:port`, kube-proxy's display name for comments.
    pub fn display(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }
    /// The key its endpoints are grouped by in EndpointSlices.
    pub fn key(&self) -> PortKey {
        (
            self.namespace.clone(),
            self.name.clone(),
            self.port_name.clone(),
            self.proto,
        )
    }
}

/// One backend of a service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub local: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    s.trim().parse().ok()
}

/// The ports of a Service the proxy handles; empty for headless (clusterIP
/// None), ExternalName, and non-IPv4 services.
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let svc_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if svc_type == "ExternalName" {
        return Vec::new();
    }
    let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(parse_v4) else {
        return Vec::new(); // headless ("None"), unallocated, or IPv6
    };
    let namespace = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = svc.metadata.name.clone().unwrap_or_default();
    let has_node_ports = matches!(svc_type, "NodePort" | "LoadBalancer");
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| parse_v4(s))
        .collect();
    let lb_ips: Vec<Ipv4Addr> = if svc_type == "LoadBalancer" {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(parse_v4))
            .collect()
    } else {
        Vec::new()
    };
    // As kube-proxy does, ranges that do not parse (or are IPv6) are left out.
    let source_ranges: Vec<Ipv4Cidr> = if lb_ips.is_empty() {
        Vec::new()
    } else {
        spec.load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|r| r.trim().parse().ok())
            .collect()
    };
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_secs = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_SECS)
    });

    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let (Some(proto), Ok(port)) = (
            Proto::from_k8s(p.protocol.as_deref()),
            u16::try_from(p.port),
        ) else {
            continue;
        };
        let node_port = if has_node_ports {
            p.node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        } else {
            None
        };
        let mut sp = ServicePort {
            namespace: namespace.clone(),
            name: name.clone(),
            port_name: p.name.clone().unwrap_or_default(),
            proto,
            port,
            cluster_ip,
            node_port,
            external_ips: external_ips.clone(),
            lb_ips: lb_ips.clone(),
            source_ranges: source_ranges.clone(),
            external_local,
            internal_local,
            affinity_secs,
        };
        // The policy only means something for externally reachable services.
        sp.external_local &= sp.externally_accessible();
        out.push(sp);
    }
    out
}

/// Key grouping endpoints: (namespace, service, port name, protocol).
pub type PortKey = (String, String, String, Proto);

/// Every port of `services`, sorted by namespace, name, port name and protocol,
/// each with the endpoints that back it in `slices`.
pub fn ports_with_endpoints<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node_name: &str,
) -> Vec<(ServicePort, Vec<Endpoint>)> {
    let mut endpoints = endpoints_by_port(slices, node_name);
    let mut ports: Vec<ServicePort> = services.into_iter().flat_map(service_ports).collect();
    ports.sort_by_cached_key(ServicePort::key);
    ports
        .into_iter()
        .map(|sp| {
            let eps = endpoints.remove(&sp.key()).unwrap_or_default();
            (sp, eps)
        })
        .collect()
}

/// All IPv4 endpoints from all slices, grouped by the service port they back,
/// deduplicated by ip:port (a ready copy wins) and sorted by ip then port.
fn endpoints_by_port<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node_name: &str,
) -> HashMap<PortKey, Vec<Endpoint>> {
    let mut map: HashMap<PortKey, Vec<Endpoint>> = HashMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        for port in slice.ports.iter().flatten() {
            let (Some(proto), Some(num)) = (
                Proto::from_k8s(port.protocol.as_deref()),
                port.port.and_then(|p| u16::try_from(p).ok()),
            ) else {
                continue;
            };
            let key = (
                ns.clone(),
                svc.clone(),
                port.name.clone().unwrap_or_default(),
                proto,
            );
            let list = map.entry(key).or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| parse_v4(a)) else {
                    continue;
                };
                let cond = ep.conditions.as_ref();
                // Unknown readiness means ready; serving defaults to ready.
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                list.push(Endpoint {
                    ip,
                    port: num,
                    local: ep.node_name.as_deref() == Some(node_name),
                    ready,
                    serving,
                    terminating,
                });
            }
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|e| (e.ip, e.port, !e.ready));
        list.dedup_by_key(|e| (e.ip, e.port));
    }
    map
}

/// Endpoints chosen for each traffic policy, as kube-proxy's CategorizeEndpoints.
/// Lists hold indices into the service port's endpoint slice.
#[derive(Debug, Default)]
pub struct Categorized {
    pub cluster: Vec<usize>,
    pub local: Vec<usize>,
    /// Whether any usable endpoint exists anywhere in the cluster.
    pub has_any: bool,
}

fn pick(eps: &[Endpoint], f: impl Fn(&Endpoint) -> bool) -> Vec<usize> {
    eps.iter()
        .enumerate()
        .filter(|(_, e)| f(e))
        .map(|(i, _)| i)
        .collect()
}

pub fn categorize(sp: &ServicePort, eps: &[Endpoint]) -> Categorized {
    let mut c = Categorized::default();
    if sp.uses_cluster_endpoints() {
        c.cluster = pick(eps, |e| e.ready);
        if c.cluster.is_empty() {
            // Fall back to terminating endpoints that still serve, so
            // connections drain gracefully during a rollout.
            c.cluster = pick(eps, |e| e.serving && e.terminating);
        }
        c.has_any = !c.cluster.is_empty();
    }
    if !sp.uses_local_endpoints() {
        return c;
    }
    c.has_any |= eps.iter().any(|e| e.ready || (e.serving && e.terminating));
    c.local = if eps.iter().any(|e| e.local && e.ready) {
        pick(eps, |e| e.local && e.ready)
    } else {
        pick(eps, |e| e.local && e.serving && e.terminating)
    };
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: [u8; 4], local: bool, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::from(ip),
            port: 80,
            local,
            ready,
            serving,
            terminating,
        }
    }

    fn sp() -> ServicePort {
        ServicePort {
            namespace: "ns".into(),
            name: "svc".into(),
            port_name: "p".into(),
            proto: Proto::Tcp,
            port: 80,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            node_port: None,
            external_ips: vec![],
            lb_ips: vec![],
            source_ranges: vec![],
            external_local: false,
            internal_local: false,
            affinity_secs: None,
        }
    }

    #[test]
    fn ready_endpoints_win_over_terminating() {
        let eps = [
            ep([10, 0, 0, 1], false, true, true, false),
            ep([10, 0, 0, 2], false, false, true, true),
        ];
        let c = categorize(&sp(), &eps);
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster, vec![0]);
        assert!(c.has_any);
    }

    #[test]
    fn serving_terminating_fallback() {
        let eps = [
            ep([10, 0, 0, 1], false, false, false, true),
            ep([10, 0, 0, 2], false, false, true, true),
        ];
        let c = categorize(&sp(), &eps);
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster, vec![1]);
    }

    #[test]
    fn not_ready_only_means_no_endpoints() {
        let eps = [ep([10, 0, 0, 1], false, false, false, false)];
        let c = categorize(&sp(), &eps);
        assert!(c.cluster.is_empty());
        assert!(!c.has_any);
    }

    #[test]
    fn internal_local_uses_only_local() {
        let mut s = sp();
        s.internal_local = true;
        let eps = [
            ep([10, 0, 0, 1], false, true, true, false),
            ep([10, 0, 0, 2], true, true, true, false),
        ];
        let c = categorize(&s, &eps);
        assert!(c.cluster.is_empty(), "cluster endpoints unused");
        assert_eq!(c.local.len(), 1);
        assert_eq!(c.local, vec![1]);
        assert!(c.has_any);
    }

    fn service(name: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": "10.96.0.9", "ports": ports},
        }))
        .unwrap()
    }

    fn slice(svc: &str, port_name: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": format!("{svc}-{port_name}"),
                "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": "n1"}],
        }))
        .unwrap()
    }

    #[test]
    fn ports_come_sorted_with_their_own_endpoints() {
        let b = service("b", serde_json::json!([{"name": "x", "port": 80}]));
        let a = service(
            "a",
            serde_json::json!([{"name": "y", "port": 81}, {"name": "x", "port": 80}]),
        );
        let slices = [
            slice("a", "y", "10.0.0.2"),
            slice("b", "x", "10.0.0.3"),
            slice("a", "x", "10.0.0.1"),
        ];
        let got: Vec<(String, Vec<Ipv4Addr>, bool)> = ports_with_endpoints([&b, &a], &slices, "n1")
            .into_iter()
            .map(|(sp, eps)| {
                let local = eps.iter().all(|e| e.local);
                (sp.display(), eps.iter().map(|e| e.ip).collect(), local)
            })
            .collect();
        let ip = |last| vec![Ipv4Addr::new(10, 0, 0, last)];
        assert_eq!(
            got,
            [
                ("ns/a:x".to_string(), ip(1), true),
                ("ns/a:y".to_string(), ip(2), true),
                ("ns/b:x".to_string(), ip(3), true),
            ]
        );
    }
}
