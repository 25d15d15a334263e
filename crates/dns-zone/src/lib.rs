//! Cluster DNS answers for cluster.local as a pure function of the cluster view. No I/O.
//!
//! The server crate owns sockets and the API watch; it feeds Services and
//! EndpointSlices into a [`ClusterView`] and calls [`answer`] or [`respond`].
//! Behaviour follows the Kubernetes DNS-Based Service Discovery specification
//! (schema 1.1.0) and CoreDNS's kubernetes plugin where the spec is silent.

mod answer;
mod compact;
mod fast;
mod ip_index;
mod lookup;
mod model;
mod qname;
mod respond;
mod reverse;
mod view;
mod wire_query;
mod wire_write;

#[cfg(test)]
mod acceptance_tests;
#[cfg(test)]
mod testutil;

pub use answer::{answer, Answer, SCHEMA_VERSION};
pub use fast::respond_fast;
pub use respond::{respond, respond_wire, truncate, DEFAULT_UDP_PAYLOAD};
pub use view::{ClusterView, ZoneError, DEFAULT_TTL};

/// Re-exported so callers use the same hickory-proto version.
pub use hickory_proto;
