//! The agent's API calls: register (or adopt) its Node, post its status, renew its Lease.
//! Each call is idempotent, so a restarted agent converges on the same objects.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::node::{self, NodeConfig};
use crate::readiness::Verdict;
use crate::{lease, Error, Result};

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api(op: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let op = op.into();
    move |source| Error::Api { op, source }
}

/// Creates the Node, or adopts the one a previous run (or another agent on this machine
/// with the same name) registered: its labels are merged in, the rest stays.
/// Returns the Node as stored (with its uid).
pub async fn register(client: &Client, cfg: &NodeConfig) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes
        .create(&PostParams::default(), &node::node_object(cfg))
        .await
    {
        Ok(n) => Ok(n),
        Err(e) if status_code(&e) == Some(409) => {
            let patch = json!({"metadata": {"labels": node::labels(cfg)}});
            nodes
                .patch(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api(format!("adopting node {}", cfg.name)))
        }
        Err(e) => Err(api(format!("registering node {}", cfg.name))(e)),
    }
}

/// Posts the node's status at `now`, Ready as `ready` says (a merge patch of `/status`;
/// lists are replaced whole, so the conditions are exactly ours). `previous` keeps
/// transition times. `images`, when given, is the Node's `status.images`.
pub async fn post_status(
    client: &Client,
    cfg: &NodeConfig,
    now: Timestamp,
    previous: Option<&NodeStatus>,
    ready: &Verdict,
    images: Option<Vec<k8s_openapi::api::core::v1::ContainerImage>>,
) -> Result<NodeStatus> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut status = node::status(cfg, now, previous, ready);
    status.images = images;
    let patch = json!({"status": status});
    nodes
        .patch_status(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api(format!("posting status of node {}", cfg.name)))?;
    Ok(status)
}

/// Renews the node's Lease, creating it when missing.
pub async fn renew_lease(
    client: &Client,
    name: &str,
    node_uid: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), lease::NAMESPACE);
    let desired = lease::lease(name, node_uid, now);
    let patch = json!({"metadata": {"ownerReferences": desired.metadata.owner_references}, "spec": desired.spec});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => {
            match leases.create(&PostParams::default(), &desired).await {
                // Created meanwhile by an older run of ours: the next renewal patches it.
                Err(e) if status_code(&e) != Some(409) => {
                    Err(api(format!("creating lease {name}"))(e))
                }
                _ => Ok(()),
            }
        }
        Err(e) => Err(api(format!("renewing lease {name}"))(e)),
    }
}
