//! NetworkPolicy (networking.k8s.io/v1): the verdict model, the compiler to a per-node nftables
//! ruleset, and a packet tracer over it. No I/O.
//!
//! - [`Cluster::verdict`] answers "is src → dst:port/proto allowed, and by which rule" from the
//!   API semantics alone.
//! - [`compile`] turns the same cluster view into the desired `table ip kinet-policy` of one
//!   node; [`trace`] runs a packet through it. Tests hold the two to the same answers on the
//!   upstream e2e truth tables.

mod cidr;
mod compile;
mod compiler;
mod input;
mod matrix;
mod model;
mod plan;
mod policy;
mod ruleset;
mod trace;

#[cfg(test)]
mod tests;

pub use compile::{compile, drop_counter_name, TABLE};
pub use compiler::Compiler;
pub use input::{Cluster, ContainerPort, Namespace, Pod, Proto};
pub use matrix::{explain, Matrix};
pub use model::{Allow, Endpoint, Verdict};
pub use plan::{plan, Change, Update};
pub use policy::{Direction, PolicyId, RuleId};
pub use ruleset::{Action, AddrField, Chain, Element, Hook, Match, Rule, Ruleset, Set, SetKind};
pub use trace::{trace, Origin, Packet, Trace};

/// Why a NetworkPolicy cannot be used (the API server's validation normally prevents it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid label selector: {0}")]
    Selector(String),
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
    #[error("unsupported protocol {0:?}: must be TCP, UDP or SCTP")]
    Protocol(String),
    #[error("invalid port {0}: must be between 1 and 65535")]
    Port(String),
    #[error("a peer must set podSelector, namespaceSelector or ipBlock")]
    EmptyPeer,
}
