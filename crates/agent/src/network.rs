//! The node's pod network, as flannel's daemon keeps it: wait for the podCIDR the node IPAM
//! controller assigns, make `cbr0` (and `flannel.1` for the vxlan backend), publish this
//! node's VTEP in flannel's Node annotations, then keep routes, neighbours and FDB entries
//! toward the other nodes in step with the Node objects.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kinet_cni::{Backend, Mac, NodeNetwork, Peer};
use kinet_ipam::Ipv4Cidr;
use kinet_netns::NetNs;
use kinet_proxy::Applier;
use kube::api::{Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use crate::readiness::{self, Check, Readiness};

/// flannel's annotations: which backend, its data (`{"VNI":1,"VtepMAC":"…"}`), and the
/// node's underlay address.
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// See [`BACKEND_TYPE`].
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// See [`BACKEND_TYPE`].
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

/// The nftables table holding the node's masquerade rules and, with VXLAN, the chains that
/// leave the overlay's own datagrams untracked (apart from the proxy's table).
pub const MASQ_TABLE: &str = "kinet-podnet";

/// Why the node's pod network could not be prepared. Each message carries its causes:
/// the readiness condition shows it as it is.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Netns(#[from] kinet_netns::Error),
    #[error(transparent)]
    Cni(#[from] kinet_cni::Error),
    #[error("loading the masquerade rules: {0}")]
    Masquerade(#[from] MasqueradeError),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Why the masquerade rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    #[error(transparent)]
    Apply(#[from] kinet_proxy::ApplyError),
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

/// Loads (or repairs) flannel's `ipMasq` rules in the node's namespace, and for VXLAN the
/// untracked overlay (docs/performance.md, issue 20), over netlink like the proxy's table
/// (no `nft` needed).
async fn apply_masquerade(cfg: &NetworkConfig) -> Result<(), MasqueradeError> {
    let mut rs = kinet_proxy_rules::pod_masquerade(MASQ_TABLE, cfg.cluster_cidr);
    if cfg.backend == Backend::Vxlan {
        kinet_proxy_rules::untrack_overlay(
            &mut rs,
            cfg.underlay_ip,
            kinet_cni::desired::VXLAN_PORT,
        );
    }
    let path = cfg.netns.clone();
    tokio::task::spawn_blocking(move || Applier::new(path, MASQ_TABLE).reconcile(&rs)).await??;
    Ok(())
}

/// This node's part in the pod network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's name.
    pub node: String,
    /// Its network namespace's path (`/run/netns/<name>` for a namespaced node, the agent's
    /// own `/proc/<pid>/ns/net` on a joined host); netlink sockets are opened there.
    pub netns: PathBuf,
    /// Its underlay address.
    pub underlay_ip: Ipv4Addr,
    /// How pod traffic crosses nodes.
    pub backend: Backend,
    /// The whole cluster's pod range (10.244.0.0/16).
    pub cluster_cidr: Ipv4Cidr,
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Vxlan => "vxlan",
        Backend::HostGw => "host-gw",
    }
}

/// The peers a node needs, from the Node objects: every other node with a podCIDR, an
/// InternalIP and (for vxlan) a published VTEP MAC. Nodes not ready for that yet are skipped.
pub fn peers(nodes: &[Node], me: &str) -> Vec<Peer> {
    let mut out: Vec<Peer> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            let pod_cidr: Ipv4Cidr = n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
            let ann = n.metadata.annotations.as_ref();
            let underlay_ip = ann
                .and_then(|a| a.get(PUBLIC_IP))
                .and_then(|ip| ip.parse().ok())
                .or_else(|| internal_ip(n))?;
            let vtep_mac = ann
                .and_then(|a| a.get(BACKEND_DATA))
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d["VtepMAC"].as_str().and_then(parse_mac));
            Some(Peer {
                node: name,
                pod_cidr,
                underlay_ip,
                vtep_mac,
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

fn internal_ip(n: &Node) -> Option<Ipv4Addr> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

fn parse_mac(s: &str) -> Option<Mac> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    Mac::from_slice(&bytes)
}

/// The backend the cluster's other nodes publish (flannel's `backend-type`), for a node
/// that joins from another host and is told only the server: the first node by name that
/// says one, `None` if none does yet.
pub fn cluster_backend(nodes: &[Node], me: &str) -> Option<Backend> {
    let mut named: Vec<(&str, &str)> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref().filter(|n| *n != me)?;
            Some((
                name,
                n.metadata.annotations.as_ref()?.get(BACKEND_TYPE)?.as_str(),
            ))
        })
        .collect();
    named.sort();
    named.into_iter().find_map(|(_, b)| match b {
        "vxlan" => Some(Backend::Vxlan),
        "host-gw" => Some(Backend::HostGw),
        _ => None,
    })
}

/// Removes the node's pod network from a namespace the agent does not own (a joined host
/// leaving): the masquerade table, the peer routes, `flannel.1` and `cbr0`.
pub async fn remove(netns: &Path) -> Result<(), NetworkError> {
    let path = netns.to_path_buf();
    tokio::task::spawn_blocking(move || Applier::new(path, MASQ_TABLE).delete())
        .await
        .map_err(MasqueradeError::from)?
        .map_err(MasqueradeError::from)?;
    kinet_cni::remove_node_network(&NetNs::open_path(netns)?).await?;
    Ok(())
}

/// Waits for the node's podCIDR, then makes `cbr0` (and the VTEP) and publishes the
/// annotations. Returns the node's network (without peers).
pub async fn prepare(client: &Client, cfg: &NetworkConfig) -> Result<NodeNetwork, NetworkError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pod_cidr: Ipv4Cidr = loop {
        match nodes.get_opt(&cfg.node).await {
            Ok(Some(n)) => {
                if let Some(c) = n.spec.and_then(|s| s.pod_cidr).and_then(|c| c.parse().ok()) {
                    break c;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading node {}: {e}", cfg.node),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ns = NetNs::open_path(&cfg.netns)?;
    let (underlay_dev, mtu) = kinet_cni::underlay_link(&ns, cfg.underlay_ip).await?;
    let mut net = NodeNetwork::new(pod_cidr, cfg.underlay_ip, mtu, cfg.backend);
    net.underlay_dev = underlay_dev;
    kinet_cni::ensure_pod_bridge(&ns, &net).await?;
    apply_masquerade(cfg).await?;
    let mut annotations = json!({
        BACKEND_TYPE: backend_name(cfg.backend),
        PUBLIC_IP: cfg.underlay_ip.to_string(),
    });
    if cfg.backend == Backend::Vxlan {
        let mac = kinet_cni::ensure_vxlan(&ns, &net).await?;
        annotations[BACKEND_DATA] =
            json!(json!({"VNI": 1, "VtepMAC": mac.to_string()}).to_string());
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    nodes
        .patch(&cfg.node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(node = %cfg.node, %pod_cidr, backend = backend_name(cfg.backend), "pod network ready");
    Ok(net)
}

/// [`prepare`], retried with back-off until it succeeds. Each failure is logged and becomes
/// the network part of the node's readiness, so the Node says why it is not Ready.
pub async fn prepare_until_ready(
    client: &Client,
    cfg: &NetworkConfig,
    readiness: &watch::Sender<Readiness>,
) -> NodeNetwork {
    let mut wait = Duration::from_secs(1);
    loop {
        match prepare(client, cfg).await {
            Ok(net) => {
                readiness::report(readiness, |r| &mut r.network, Check::Ok);
                return net;
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(node = %cfg.node, retry_in = ?wait, "setting up the pod network failed: {why}");
                readiness::report(readiness, |r| &mut r.network, Check::Failed(why));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Keeps the routes toward the other nodes current, reporting failures in the node's
/// readiness; runs until cancelled.
pub async fn keep_peers(
    client: Client,
    cfg: NetworkConfig,
    mut net: NodeNetwork,
    readiness: watch::Sender<Readiness>,
) {
    let ns = match NetNs::open_path(&cfg.netns) {
        Ok(ns) => ns,
        Err(e) => {
            let why = format!("opening {}: {e}", cfg.netns.display());
            tracing::error!("{why}");
            readiness::report(&readiness, |r| &mut r.network, Check::Failed(why));
            return;
        }
    };
    let (store, writer) = reflector::store::<Node>();
    let nodes: Api<Node> = Api::all(client);
    let mut stream = watcher(nodes, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .boxed();
    loop {
        match stream.try_next().await {
            // The store holds a relist only once it is complete.
            Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("node watch: {e}");
                continue;
            }
        }
        let all: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        let mut wanted = peers(&all, &cfg.node);
        // A vxlan peer is reachable once it has published its VTEP.
        wanted.retain(|p| cfg.backend != Backend::Vxlan || p.vtep_mac.is_some());
        if wanted == net.peers {
            continue;
        }
        net.peers = wanted;
        match kinet_cni::sync_peers(&ns, &net).await {
            Ok(plan) => {
                if !plan.is_empty() {
                    tracing::info!(node = %cfg.node, peers = net.peers.len(), "routes to other nodes updated");
                }
                readiness::report(&readiness, |r| &mut r.network, Check::Ok);
            }
            Err(e) => {
                tracing::warn!("syncing routes to other nodes: {e}");
                let why = format!("syncing routes to other nodes: {e}");
                readiness::report(&readiness, |r| &mut r.network, Check::Failed(why));
                // Force a retry on the next event (every node heartbeat is one).
                net.peers.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_come_from_node_annotations_and_skip_self() {
        let nodes: Vec<Node> = serde_json::from_value(json!([
            {"metadata": {"name": "a", "annotations": {PUBLIC_IP: "172.18.0.2",
                BACKEND_DATA: "{\"VNI\":1,\"VtepMAC\":\"02:00:00:00:00:0a\"}"}},
             "spec": {"podCIDR": "10.244.0.0/24"}},
            {"metadata": {"name": "b"}, "spec": {"podCIDR": "10.244.1.0/24"},
             "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}]}},
            {"metadata": {"name": "c"}},
        ]))
        .unwrap();
        let p = peers(&nodes, "b");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].node, "a");
        assert_eq!(p[0].underlay_ip, Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(
            p[0].vtep_mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:00:00:0a")
        );
        let p = peers(&nodes, "a");
        assert_eq!(p[0].underlay_ip, Ipv4Addr::new(172, 18, 0, 3));
        assert_eq!(p[0].vtep_mac, None);
    }

    #[test]
    fn a_joining_node_takes_the_backend_the_others_publish() {
        let nodes: Vec<Node> = serde_json::from_value(json!([
            {"metadata": {"name": "b", "annotations": {BACKEND_TYPE: "vxlan"}}},
            {"metadata": {"name": "a", "annotations": {BACKEND_TYPE: "host-gw"}}},
            {"metadata": {"name": "me", "annotations": {BACKEND_TYPE: "vxlan"}}},
            {"metadata": {"name": "c"}},
        ]))
        .unwrap();
        assert_eq!(cluster_backend(&nodes, "me"), Some(Backend::HostGw));
        assert_eq!(cluster_backend(&nodes[2..], "me"), None);
    }
}
