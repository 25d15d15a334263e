//! Node IPAM: gives every Node without `spec.podCIDR` the lowest free block of the cluster CIDR.
//!
//! One serial loop over a node reflector, so two nodes never get the same block. The allocator
//! is rebuilt from the Nodes' own `spec.podCIDR` on start (assignments survive restarts) and
//! kept between passes, so a block patched onto a node counts as used before the watch shows it.
//! When the range is exhausted the node gets NetworkUnavailable=True/NoCIDRAvailable and a
//! CIDRNotAvailable Warning event; it is retried whenever a node changes or goes, and once it
//! has a block the condition turns False again (as the cloud CIDR allocator words it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kinet_ipam::{Ipv4Cidr, NodeCidrs};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::events::{object_ref, EventType, Recorder};

/// Runs the node IPAM loop.
pub async fn run(client: Client, config: crate::ControllerConfig) -> Result<(), crate::LoopError> {
    let cluster: Ipv4Cidr = config.cluster_cidr.parse()?;
    let mut cidrs = NodeCidrs::new(cluster, config.node_cidr_mask)?;
    let wake = Arc::new(Notify::new());
    // Ends with this loop (a restart, or leadership lost), as it holds `wake` weakly.
    let store = crate::runtime::reflect_and_wake(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &wake,
    );
    store.wait_until_ready().await?;
    let recorder = Recorder::new(client.clone(), "node-ipam-controller");
    loop {
        pass(&client, &recorder, &store, &mut cidrs).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), wake.notified()).await;
    }
}

/// The podCIDR a node already carries, if any.
fn node_cidr(node: &Node) -> Option<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
}

async fn pass(client: &Client, recorder: &Recorder, store: &Store<Node>, cidrs: &mut NodeCidrs) {
    let mut nodes = store.state();
    nodes.sort_by_key(|n| n.name_any());
    let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    // Deleted nodes give their blocks back.
    let gone: Vec<String> = cidrs
        .assigned()
        .map(|(n, _)| n.to_string())
        .filter(|n| !names.contains(n))
        .collect();
    for n in gone {
        cidrs.release(&n);
    }
    // Claims first, so new allocations never hand out a block a node already holds.
    for node in &nodes {
        if let Some(c) = node_cidr(node) {
            match c
                .parse()
                .map_err(|e: kinet_ipam::Error| e.to_string())
                .and_then(|c| cidrs.occupy(&node.name_any(), c).map_err(|e| e.to_string()))
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(node = %node.name_any(), error = %e, "node podCIDR not tracked")
                }
            }
        }
    }
    let api: Api<Node> = Api::all(client.clone());
    for node in nodes
        .iter()
        .filter(|n| node_cidr(n).is_some() && lacks_cidr_condition(n))
    {
        clear_network_unavailable(&api, node).await;
    }
    for node in nodes
        .iter()
        .filter(|n| node_cidr(n).is_none() && n.metadata.deletion_timestamp.is_none())
    {
        let name = node.name_any();
        match cidrs.allocate(&name) {
            Some(cidr) => {
                let patch =
                    json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::warn!(node = %name, error = %e, "could not set podCIDR");
                    if matches!(&e, kube::Error::Api(ae) if ae.code == 404) {
                        cidrs.release(&name);
                    }
                }
            }
            None => report_exhausted(&api, recorder, node, cidrs).await,
        }
    }
}

/// Whether the node still says NetworkUnavailable=True because it had no CIDR.
fn lacks_cidr_condition(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "NetworkUnavailable"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("NoCIDRAvailable")
            })
        })
}

/// The node got its block: NetworkUnavailable goes False.
async fn clear_network_unavailable(api: &Api<Node>, node: &Node) {
    let name = node.name_any();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated",
        "message": "NodeController create implicit route",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        tracing::warn!(node = %name, error = %e, "could not clear NetworkUnavailable");
    }
}

async fn report_exhausted(api: &Api<Node>, recorder: &Recorder, node: &Node, cidrs: &NodeCidrs) {
    let name = node.name_any();
    let message = format!(
        "no /{} CIDR is free in cluster CIDR {} for node {name} (all {} are assigned)",
        cidrs.mask(),
        cidrs.cluster(),
        cidrs.capacity()
    );
    let already = lacks_cidr_condition(node);
    if !already {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"conditions": [{
            "type": "NetworkUnavailable", "status": "True", "reason": "NoCIDRAvailable", "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::warn!(node = %name, error = %e, "could not set NetworkUnavailable");
        }
    }
    recorder
        .publish(
            &object_ref(node),
            EventType::Warning,
            "CIDRNotAvailable",
            &format!("Node {name} status is now: CIDRNotAvailable"),
        )
        .await;
}
