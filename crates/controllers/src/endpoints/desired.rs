//! What the Endpoints of a Service should hold, from the Service and the pods in its namespace.
//! Pure: no I/O, so the rules (readiness, terminating pods, named ports, hostnames) are tested
//! from tables.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The selector of a Service the controllers manage, or None for selector-less Services
/// (whose Endpoints are written by hand and must be left alone).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `pod` is in `svc`'s namespace and carries every label of its selector.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = selector(svc) else {
        return false;
    };
    pod.namespace() == svc.namespace() && kinet_selectors::set_matches(sel, pod.labels())
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's IP, if it belongs in endpoints at all: it has an IP, it has not finished, and
/// (unless `include_terminating`) it is not being deleted. As upstream's ShouldPodBeInEndpoints.
pub fn endpoint_ip(pod: &Pod, include_terminating: bool) -> Option<&str> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

/// The pod port a Service port sends to: a number as is, a name looked up among the pod's
/// container ports of the same protocol, the Service port itself when unset.
pub fn resolve_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let containers = pod
                .spec
                .as_ref()
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports as this pod serves them; ports the pod cannot serve are left out.
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: resolve_port(pod, sp)?,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The pod's DNS hostname under this Service: spec.hostname when spec.subdomain names it.
pub fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| host.to_string())
}

/// `targetRef` of an address: the pod by kind, namespace, name and uid. Upstream left out the
/// resourceVersion on purpose: it changes on every pod status write and would churn endpoints.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

fn headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Labels of the Endpoints: the Service's, plus the headless marker.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.remove(HEADLESS_LABEL);
    if headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// One subset in the making: ports, ready and not-ready addresses.
type Group = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// The Endpoints `svc` should have given `pods` (any pods; non-matching ones are ignored).
/// Addresses are grouped into subsets by identical port lists and sorted by IP, so the same
/// input always gives the same object.
pub fn desired_endpoints(svc: &Service, pods: &[&Pod]) -> Endpoints {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    // Keyed by the port list so equal lists share one subset.
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        // Terminating pods leave Endpoints unless the Service publishes not-ready addresses.
        let Some(ip) = endpoint_ip(pod, publish_not_ready) else {
            continue;
        };
        if !seen.insert(ip.to_string()) {
            continue;
        }
        let ports = pod_ports(svc, pod);
        // A pod that serves none of the ports is no endpoint; headless port-less Services list all.
        if ports.is_empty() && (has_ports || !headless(svc)) {
            continue;
        }
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: hostname(svc, pod),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(target_ref(pod)),
        };
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let group = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish_not_ready || pod_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            labels: Some(endpoints_labels(svc)),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// Whether `existing` must be rewritten to become `desired` (subsets or managed labels differ).
pub fn endpoints_differ(existing: &Endpoints, desired: &Endpoints) -> bool {
    let empty = |s: &Option<Vec<EndpointSubset>>| s.as_ref().is_none_or(|v| v.is_empty());
    let subsets_differ = !(empty(&existing.subsets) && empty(&desired.subsets))
        && existing.subsets != desired.subsets;
    let labels_differ = existing.labels() != desired.labels();
    subsets_differ || labels_differ
}
