//! kube-proxy's iptables mode: the node's desired `nat` and `filter` chains, rendered as
//! a pure function of the same service model as `kinet-proxy-rules` (nftables mode),
//! written as `iptables-restore --noflush` text (full, partial, or a cleanup), and traced
//! packet by packet, and cut per Service from a live `iptables-save`. No I/O.

mod listing;
mod names;
mod render;
mod restore;
mod rule;
mod tables;
mod trace;

pub use listing::rules_in_save;
pub use names::{endpoint_chain, service_port_name, PortChains};
pub use render::render;
pub use restore::{cleanup_restore, full_restore, partial_restore, Saved};
pub use rule::{Match, Rule, Target};
pub use tables::{jumps, Chains, Jump, Table, Tables};
pub use trace::trace;
