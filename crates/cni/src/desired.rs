//! What a node's pod network should look like, computed from data alone (no netlink): the
//! routes, neighbour and FDB entries toward the other nodes, as flannel's vxlan and host-gw
//! backends install them, and the diff between that and what a node has.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use kinet_ipam::Ipv4Cidr;

/// The VXLAN device flannel creates for VNI 1.
pub const VXLAN_DEV: &str = "flannel.1";
/// flannel's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// flannel's VXLAN UDP port (the Linux default, not IANA's 4789).
pub const VXLAN_PORT: u16 = 8472;
/// VXLAN adds 50 bytes: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// The node's underlay interface.
pub const UNDERLAY_DEV: &str = "eth0";
/// The pod bridge inside each node.
pub const POD_BRIDGE: &str = "cbr0";

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// From a netlink link-layer address; `None` unless it is 6 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(b).ok().map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How pod traffic crosses nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// flannel's vxlan: an overlay over `flannel.1`.
    Vxlan,
    /// flannel's host-gw: plain routes via the other node's underlay address (one L2 segment).
    HostGw,
}

/// Another node, as this node needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Node name (for messages only).
    pub node: String,
    /// Its podCIDR.
    pub pod_cidr: Ipv4Cidr,
    /// Its address on the underlay.
    pub underlay_ip: Ipv4Addr,
    /// Its `flannel.1` MAC; needed by the vxlan backend only.
    pub vtep_mac: Option<Mac>,
}

/// One node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// This node's podCIDR.
    pub pod_cidr: Ipv4Cidr,
    /// `cbr0`'s address: the podCIDR's first host address, with the podCIDR's prefix.
    pub bridge_ip: Ipv4Addr,
    /// The underlay MTU (of `underlay_dev`).
    pub mtu: u32,
    /// The cross-node backend.
    pub backend: Backend,
    /// This node's underlay address.
    pub underlay_ip: Ipv4Addr,
    /// The link holding it (`eth0` in a namespaced node; a joined host's own link).
    pub underlay_dev: String,
    /// The other nodes.
    pub peers: Vec<Peer>,
}

impl NodeNetwork {
    /// A node network with the conventional bridge address (podCIDR .1).
    pub fn new(pod_cidr: Ipv4Cidr, underlay_ip: Ipv4Addr, mtu: u32, backend: Backend) -> Self {
        NodeNetwork {
            pod_cidr,
            bridge_ip: bridge_ip(pod_cidr),
            mtu,
            backend,
            underlay_ip,
            underlay_dev: UNDERLAY_DEV.to_string(),
            peers: Vec::new(),
        }
    }

    /// MTU for `cbr0` and pod interfaces: the underlay's, so pods on one node exchange
    /// full-size frames; what leaves the node is bounded by [`Self::pod_route_mtu`].
    pub fn pod_mtu(&self) -> u32 {
        self.mtu
    }

    /// MTU of the pods' default route, when what leaves the node is encapsulated: what is
    /// left after the overlay's header (Cilium's route MTU). `None`: the link's MTU.
    pub fn pod_route_mtu(&self) -> Option<u32> {
        match self.backend {
            Backend::Vxlan => Some(vxlan_mtu(self.mtu)),
            Backend::HostGw => None,
        }
    }

    /// The routes, neighbours and FDB entries toward the peers that should exist.
    pub fn desired(&self) -> Result<Desired, PeerError> {
        let mut d = Desired::default();
        let mut seen: Vec<&Peer> = Vec::new();
        for p in &self.peers {
            if p.pod_cidr.contains_cidr(&self.pod_cidr) || self.pod_cidr.contains_cidr(&p.pod_cidr)
            {
                return Err(PeerError::OverlapsSelf(p.node.clone(), p.pod_cidr));
            }
            if let Some(q) = seen.iter().find(|q| {
                q.pod_cidr.contains_cidr(&p.pod_cidr) || p.pod_cidr.contains_cidr(&q.pod_cidr)
            }) {
                return Err(PeerError::Overlap(
                    q.node.clone(),
                    p.node.clone(),
                    p.pod_cidr,
                ));
            }
            seen.push(p);
            match self.backend {
                Backend::Vxlan => {
                    let mac = p
                        .vtep_mac
                        .ok_or_else(|| PeerError::NoVtepMac(p.node.clone()))?;
                    let vtep = vtep_ip(p.pod_cidr);
                    d.routes.insert(Route {
                        dst: p.pod_cidr,
                        via: vtep,
                        dev: VXLAN_DEV.into(),
                        onlink: true,
                    });
                    d.neighs.insert(Neigh { ip: vtep, mac });
                    d.fdb.insert(Fdb {
                        mac,
                        dst: p.underlay_ip,
                    });
                }
                Backend::HostGw => {
                    d.routes.insert(Route {
                        dst: p.pod_cidr,
                        via: p.underlay_ip,
                        dev: self.underlay_dev.clone(),
                        onlink: false,
                    });
                }
            }
        }
        Ok(d)
    }
}

/// Why the peer list cannot be turned into routes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// A vxlan peer has not published its VTEP MAC yet.
    #[error("peer {0} has no VTEP MAC")]
    NoVtepMac(String),
    /// A peer's podCIDR overlaps this node's.
    #[error("peer {0}'s podCIDR {1} overlaps this node's")]
    OverlapsSelf(String, Ipv4Cidr),
    /// Two peers' podCIDRs overlap.
    #[error("peers {0} and {1} overlap at {2}")]
    Overlap(String, String, Ipv4Cidr),
}

/// The conventional bridge/gateway address of a podCIDR: its first host address.
pub fn bridge_ip(pod_cidr: Ipv4Cidr) -> Ipv4Addr {
    pod_cidr.nth(1).unwrap_or(pod_cidr.network())
}

/// flannel's VTEP address for a podCIDR: the network address itself, as a /32 on `flannel.1`.
pub fn vtep_ip(pod_cidr: Ipv4Cidr) -> Ipv4Addr {
    pod_cidr.network()
}

/// The `flannel.1` MTU for an underlay MTU.
pub fn vxlan_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
}

/// `ip route add <dst> via <via> dev <dev> [onlink]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination prefix (a peer's podCIDR).
    pub dst: Ipv4Cidr,
    /// Next hop.
    pub via: Ipv4Addr,
    /// Output device.
    pub dev: String,
    /// Next hop is not on a connected subnet (the VTEP /32s).
    pub onlink: bool,
}

/// A permanent ARP entry on `flannel.1`: peer VTEP IP -> peer VTEP MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neigh {
    /// The peer's VTEP address.
    pub ip: Ipv4Addr,
    /// The peer's VTEP MAC.
    pub mac: Mac,
}

/// A `flannel.1` forwarding entry: peer VTEP MAC -> peer underlay IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fdb {
    /// The peer's VTEP MAC.
    pub mac: Mac,
    /// The peer's underlay address (outer destination).
    pub dst: Ipv4Addr,
}

/// Everything toward the peers that should exist on one node. Sets, so comparison ignores order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Routes to peer podCIDRs.
    pub routes: BTreeSet<Route>,
    /// Permanent neighbours on `flannel.1`.
    pub neighs: BTreeSet<Neigh>,
    /// FDB entries on `flannel.1`.
    pub fdb: BTreeSet<Fdb>,
}

/// What to add and remove to turn `actual` into `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries missing on the node.
    pub add: Desired,
    /// Entries the node has that nothing wants (peers that left, changed MACs).
    pub remove: Desired,
}

impl Plan {
    /// Whether actual already equals desired.
    pub fn is_empty(&self) -> bool {
        self.add == Desired::default() && self.remove == Desired::default()
    }
}

/// The difference between what a node has (`actual`, only entries this crate manages) and
/// what it should have.
pub fn plan(actual: &Desired, desired: &Desired) -> Plan {
    fn minus<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
        a.difference(b).cloned().collect()
    }
    Plan {
        add: Desired {
            routes: minus(&desired.routes, &actual.routes),
            neighs: minus(&desired.neighs, &actual.neighs),
            fdb: minus(&desired.fdb, &actual.fdb),
        },
        remove: Desired {
            routes: minus(&actual.routes, &desired.routes),
            neighs: minus(&actual.neighs, &desired.neighs),
            fdb: minus(&actual.fdb, &desired.fdb),
        },
    }
}

/// The host-side veth name for a pod: `veth` + 8 hex digits of a stable hash of its key
/// (e.g. the pod's netns name or sandbox id), 12 characters, under IFNAMSIZ's 15.
pub fn host_veth_name(key: &str) -> String {
    format!("veth{:08x}", kinet_types::hash::fnv1a_32(key))
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
