//! IP address management for kinet, with no I/O:
//!
//! - [`Ipv4Cidr`]: parsing, printing and arithmetic on IPv4 prefixes.
//! - [`NodeCidrs`]: carves a node podCIDR out of the cluster CIDR (lowest free first), as the
//!   node IPAM controller's range allocator does.
//! - [`PodIps`]: host-local style allocation of pod addresses inside one node's podCIDR, with a
//!   serialisable [`PodIpState`] the node agent persists.

mod cidr;
mod node;
mod pod;

pub use cidr::Ipv4Cidr;
pub use node::NodeCidrs;
pub use pod::{PodIpState, PodIps};

/// Why an IPAM operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not `a.b.c.d/n`.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// The node mask is shorter than the cluster prefix, or longer than 30 bits.
    #[error("node mask /{mask} does not fit in cluster CIDR {cluster}")]
    BadMask {
        /// The cluster CIDR.
        cluster: Ipv4Cidr,
        /// The requested node prefix length.
        mask: u8,
    },
    /// A CIDR recorded on a node is not one of the cluster's node blocks.
    #[error("{cidr} is not a /{mask} block of {cluster}")]
    NotInCluster {
        /// The offending CIDR.
        cidr: Ipv4Cidr,
        /// The cluster CIDR.
        cluster: Ipv4Cidr,
        /// The node prefix length.
        mask: u8,
    },
    /// Two nodes claim the same block.
    #[error("{cidr} is already assigned to node {owner}")]
    AlreadyAssigned {
        /// The contested block.
        cidr: Ipv4Cidr,
        /// The node that holds it.
        owner: String,
    },
    /// Every usable address of the range is taken.
    #[error("no IP addresses available in range {0}")]
    Exhausted(Ipv4Cidr),
    /// The range has no usable host addresses (a /31 or /32).
    #[error("range {0} has no usable host addresses")]
    TooSmall(Ipv4Cidr),
}
