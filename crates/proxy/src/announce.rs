//! LoadBalancer addresses on the underlay, MetalLB L2 style: for each address one node
//! answers ARP, and every proxy computes the same choice from the same objects, so no
//! coordination is needed. The chosen node holds the address as a /32 on `lo` (labelled
//! `lo:kinet-lb`), and the kernel answers ARP for it on `eth0` (arp_ignore 0: any local
//! address). Packets then arrive at that node, whose prerouting DNAT sends them on.
//!
//! Eligible nodes: for `externalTrafficPolicy: Local`, those with a ready endpoint of the
//! Service (so the client address is kept and never dropped on a node without endpoints);
//! otherwise, and when no node has one, every Ready node. Among them the node with the lowest
//! hash of `node/ip` wins, which spreads addresses over nodes and moves only the addresses of
//! a node that comes or goes. Pure; [`crate::LbAddresses`] applies the result.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use kinet_types::wellknown::SERVICE_NAME_LABEL;

/// Names of Ready nodes (a node without a Ready condition counts: it has not reported yet).
pub fn ready_nodes(nodes: &[Node]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            ready.is_none_or(|c| c.status == "True")
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

/// Each ready endpoint of `slices` with its Service's `(namespace, name)`; slices without the
/// service-name label belong to no Service. No `ready` condition means ready, as upstream.
pub(crate) fn ready_endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> impl Iterator<Item = ((String, String), &'a Endpoint)> {
    slices.into_iter().flat_map(|s| {
        let svc = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        let key = svc.map(|svc| {
            (
                s.metadata.namespace.clone().unwrap_or_default(),
                svc.clone(),
            )
        });
        s.endpoints
            .iter()
            .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .filter_map(move |ep| Some((key.clone()?, ep)))
    })
}

/// `(namespace, name)` → nodes that host a ready endpoint of that Service.
pub fn endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (key, ep) in ready_endpoints(slices) {
        if let Some(n) = &ep.node_name {
            out.entry(key).or_default().insert(n.clone());
        }
    }
    out
}

/// The LoadBalancer ingress IPs of a Service of type LoadBalancer.
pub fn lb_ips(svc: &Service) -> Vec<Ipv4Addr> {
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        return Vec::new();
    }
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn external_local(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// FNV-1a then a splitmix64 finaliser (FNV alone orders names that differ in one byte
/// nearly the same way for every address): stable across processes and builds, so every
/// node computes the same winner.
fn score(node: &str, ip: Ipv4Addr) -> u64 {
    let h = kinet_types::hash::fnv1a_64(format!("{ip}/{node}"));
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which node announces each LoadBalancer address. `ready` is the set of Ready nodes; if it is
/// empty (nodes not known yet) `me` stands in for it, so a single node still works.
pub fn announcers<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ready: &BTreeSet<String>,
    me: &str,
) -> BTreeMap<Ipv4Addr, String> {
    let fallback: BTreeSet<String> = [me.to_string()].into();
    let ready = if ready.is_empty() { &fallback } else { ready };
    let by_service = endpoint_nodes(slices);
    let mut out = BTreeMap::new();
    for svc in services {
        let key = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        let local: BTreeSet<String> = by_service
            .get(&key)
            .map(|n| n.intersection(ready).cloned().collect())
            .unwrap_or_default();
        let eligible = if external_local(svc) && !local.is_empty() {
            &local
        } else {
            ready
        };
        for ip in lb_ips(svc) {
            if let Some(winner) = eligible.iter().min_by_key(|n| (score(n, ip), (*n).clone())) {
                out.entry(ip).or_insert_with(|| winner.clone());
            }
        }
    }
    out
}

/// The addresses `me` should hold.
pub fn mine(announcers: &BTreeMap<Ipv4Addr, String>, me: &str) -> BTreeSet<Ipv4Addr> {
    announcers
        .iter()
        .filter(|(_, n)| n.as_str() == me)
        .map(|(ip, _)| *ip)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(name: &str, ip: &str, local: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9",
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" }},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }))
        .unwrap()
    }

    fn slice(svc: &str, nodes: &[&str]) -> EndpointSlice {
        let eps: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"addresses": [format!("10.244.0.{}", i + 2)], "nodeName": n, "conditions": {"ready": true}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": format!("{svc}-x"),
                         "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4", "endpoints": eps,
        }))
        .unwrap()
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_announcer_per_address_and_all_nodes_agree() {
        let svcs: Vec<Service> = (0..20)
            .map(|i| lb(&format!("s{i}"), &format!("172.18.255.{}", 192 + i), false))
            .collect();
        let ready = nodes(&["a", "b", "c"]);
        let from_a = announcers(&svcs, &[], &ready, "a");
        let from_b = announcers(&svcs, &[], &ready, "b");
        assert_eq!(from_a, from_b);
        assert_eq!(from_a.len(), 20);
        // Spread: no node takes every address.
        for n in ["a", "b", "c"] {
            assert!(mine(&from_a, n).len() < 20, "{n} holds everything");
        }
        let total: usize = ["a", "b", "c"].iter().map(|n| mine(&from_a, n).len()).sum();
        assert_eq!(total, 20);
    }

    #[test]
    fn local_policy_announces_from_a_node_with_an_endpoint() {
        let svcs = vec![lb("web", "172.18.255.200", true)];
        let ready = nodes(&["a", "b", "c"]);
        for holder in ["a", "b", "c"] {
            let got = announcers(&svcs, &[slice("web", &[holder])], &ready, "a");
            assert_eq!(got[&"172.18.255.200".parse().unwrap()], holder);
        }
        // No endpoints anywhere: still announced (so clients are refused, not left hanging).
        assert_eq!(announcers(&svcs, &[], &ready, "a").len(), 1);
        // A NotReady node's endpoint does not make it eligible.
        let got = announcers(&svcs, &[slice("web", &["d"])], &ready, "a");
        assert_ne!(got[&"172.18.255.200".parse().unwrap()], "d");
    }

    #[test]
    fn unknown_nodes_mean_this_node_and_non_lb_services_are_ignored() {
        let mut svc = lb("web", "172.18.255.200", false);
        let got = announcers(std::slice::from_ref(&svc), &[], &BTreeSet::new(), "me");
        assert_eq!(mine(&got, "me").len(), 1);
        svc.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(announcers(&[svc], &[], &nodes(&["a"]), "a").is_empty());
    }
}
