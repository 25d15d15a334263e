//! kinet's pod network (flannel-style), in two layers:
//!
//! - [`desired`]: pure data. [`NodeNetwork`] -> the routes, neighbours and FDB entries toward
//!   the other nodes ([`NodeNetwork::desired`]), and [`plan`] to diff them with what a node has.
//! - netlink steps over `rtnetlink`, each idempotent ("already exists" is success):
//!   [`ensure_underlay`] ([`ensure_underlay_bridge`] + its gateway), [`ensure_node`]
//!   ([`attach_to_underlay`], then [`ensure_pod_bridge`]), [`ensure_vxlan`], [`sync_peers`], [`add_pod`],
//!   [`del_pod`], and the CHECK side [`check_node`], [`check_peers`], [`check_pod`].
//!
//! Every step takes the namespaces as [`kinet_netns::NetNs`] and opens its netlink socket
//! inside them, so callers never switch namespace themselves.

mod check;
pub mod desired;
pub mod nl;
mod node;
mod peers;
mod pod;
mod vxlan;

pub use check::check_node;
pub use desired::{
    bridge_ip, host_veth_name, plan, vtep_ip, vxlan_mtu, Backend, Desired, Fdb, Mac, Neigh,
    NodeNetwork, Peer, PeerError, Plan, Route,
};
pub use node::{
    attach_to_underlay, ensure_node, ensure_pod_bridge, ensure_underlay, ensure_underlay_bridge,
    ip_forward, set_ip_forward, underlay_link, Underlay,
};
pub use peers::{check_peers, remove_node_network, sync_peers, ROUTE_PROTO};
pub use pod::{add_pod, check_pod, del_pod, PodLink, PodSpec};
pub use vxlan::ensure_vxlan;

/// Why a network step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request was refused.
    #[error("{op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// Entering or opening a namespace failed.
    #[error(transparent)]
    Netns(#[from] kinet_netns::Error),
    /// A file in /proc could not be read or written.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Something the step needs does not exist (a link, a MAC).
    #[error("missing {0}")]
    Missing(String),
    /// The input contradicts itself or what exists.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The peer list cannot be turned into routes.
    #[error(transparent)]
    Peers(#[from] PeerError),
}

/// A local `Result` alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
