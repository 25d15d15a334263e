//! Which EndpointSlices a Service should have, as a diff against the ones it has. Pure.
//!
//! Endpoints are grouped by their resolved port list (one list per slice), at most
//! [`MAX_ENDPOINTS`] per slice. An endpoint stays in the slice it is already in, new ones fill
//! slices with room before new slices are made, so one pod changing rewrites one slice.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::desired::{
    endpoint_ip, endpoints_labels, hostname, pod_ports, pod_ready, selects, target_ref,
};

pub use kinet_types::wellknown::SERVICE_NAME_LABEL;
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const MAX_ENDPOINTS: usize = 100;

/// The writes that turn the existing slices into the desired ones.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SliceChanges {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Whether this controller manages `slice` for the Service named `service`.
pub fn managed(slice: &EndpointSlice, service: &str) -> bool {
    let labels = slice.labels();
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(service)
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = endpoints_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The slice endpoint for `pod`, terminating pods included (not ready, serving per Ready).
pub fn pod_endpoint(svc: &Service, pod: &Pod) -> Option<(Vec<EndpointPort>, Endpoint)> {
    let ip = endpoint_ip(pod, true)?;
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (serving && !terminating);
    let ports = pod_ports(svc, pod)
        .into_iter()
        .map(|p| EndpointPort {
            // Always present, "" for an unnamed port, as upstream writes it: `kubectl describe
            // svc` dereferences it.
            name: Some(p.name.unwrap_or_default()),
            port: Some(p.port),
            protocol: p.protocol,
            app_protocol: p.app_protocol,
        })
        .collect();
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(svc, pod),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    };
    Some((ports, endpoint))
}

fn ports_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

fn address(e: &Endpoint) -> String {
    e.addresses.first().cloned().unwrap_or_default()
}

/// The desired slices of `svc` given `pods`, as changes to `existing` (the slices labelled with
/// the Service's name; ones this controller does not manage are ignored).
pub fn desired_slices(svc: &Service, pods: &[&Pod], existing: &[EndpointSlice]) -> SliceChanges {
    // Port list key -> (ports, endpoints by address).
    let mut want: BTreeMap<String, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
        BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        let Some((ports, endpoint)) = pod_endpoint(svc, pod) else {
            continue;
        };
        let entry = want
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.entry(address(&endpoint)).or_insert(endpoint);
    }
    // With no endpoints at all, one empty placeholder slice stands for the Service, as upstream.
    let placeholder = want.is_empty();
    if placeholder {
        want.insert(ports_key(&[]), (Vec::new(), BTreeMap::new()));
    }
    let labels = slice_labels(svc);
    let owners = vec![owner(svc)];
    let mut changes = SliceChanges::default();
    let mut mine: Vec<&EndpointSlice> = existing
        .iter()
        .filter(|s| managed(s, &svc.name_any()))
        .collect();
    mine.sort_by_key(|s| s.name_any());
    let mut by_ports: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in mine {
        let key = ports_key(slice.ports.as_deref().unwrap_or_default());
        if slice.address_type == "IPv4" && want.contains_key(&key) {
            by_ports.entry(key).or_default().push(slice);
        } else {
            changes.delete.push(slice.clone());
        }
    }
    for (key, (ports, mut remaining)) in want {
        let candidates = by_ports.remove(&key).unwrap_or_default();
        let placeholder_missing = placeholder && candidates.is_empty();
        // Keep each endpoint where it is, refreshed to its desired form.
        let mut kept: Vec<Vec<Endpoint>> = candidates
            .iter()
            .map(|s| {
                s.endpoints
                    .iter()
                    .filter_map(|e| remaining.remove(&address(e)))
                    .collect()
            })
            .collect();
        let mut fresh = remaining.into_values();
        for eps in kept.iter_mut() {
            while eps.len() < MAX_ENDPOINTS {
                let Some(e) = fresh.next() else { break };
                eps.push(e);
            }
        }
        for (i, (slice, mut eps)) in candidates.into_iter().zip(kept).enumerate() {
            // Empty slices go, except the one placeholder.
            if eps.is_empty() && !(placeholder && i == 0) {
                changes.delete.push(slice.clone());
                continue;
            }
            eps.sort_by_key(address);
            let wanted_ports = (!ports.is_empty()).then(|| ports.clone());
            let same = slice.endpoints == eps
                && slice.ports.as_ref().filter(|p| !p.is_empty()) == wanted_ports.as_ref()
                && slice.labels() == &labels
                && slice.metadata.owner_references.as_ref() == Some(&owners);
            if !same {
                let mut updated = slice.clone();
                updated.endpoints = eps;
                updated.ports = wanted_ports;
                updated.metadata.labels = Some(labels.clone());
                updated.metadata.owner_references = Some(owners.clone());
                changes.update.push(updated);
            }
        }
        let fresh: Vec<Endpoint> = fresh.collect();
        let mut chunks: Vec<Vec<Endpoint>> = fresh
            .chunks(MAX_ENDPOINTS)
            .map(<[Endpoint]>::to_vec)
            .collect();
        if placeholder_missing {
            chunks.push(Vec::new());
        }
        for eps in chunks {
            changes.create.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", svc.name_any())),
                    namespace: svc.namespace(),
                    labels: Some(labels.clone()),
                    owner_references: Some(owners.clone()),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: eps,
                ports: (!ports.is_empty()).then(|| ports.clone()),
            });
        }
    }
    changes
}
