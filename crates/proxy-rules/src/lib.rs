//! The service proxy's desired nftables ruleset, rendered as a pure function of Services, EndpointSlices and the node, plus a packet tracer. No I/O.
//!
//! The design follows kube-proxy's nftables mode: one `ip` table; packets to
//! service addresses are dispatched by a single verdict-map lookup
//! (`service-ips`, `service-nodeports`) to per-service chains, which pick an
//! endpoint with `numgen random` in their endpoint group's range of an endpoints
//! map (one per protocol and 64 groups); services without usable endpoints are
//! rejected or dropped through the `no-endpoint-*` maps in the filter hooks.

mod config;
mod diff;
mod groups;
mod input;
mod masquerade;
mod model;
mod names;
mod nft;
mod overlay;
mod render;
mod renderer;
mod repair;
mod skeleton;
pub mod trace;

pub use config::{NodeInfo, ProxyConfig};
pub use diff::{Change, Update};
pub use groups::GroupIds;
/// The proxy's view of Services and endpoints, shared with the iptables renderer.
pub use input::{
    categorize, ports_with_endpoints, service_ports, Categorized, Endpoint, PortKey, ServicePort,
};
pub use masquerade::pod_masquerade;
pub use model::{
    Action, BaseChain, Chain, Hook, Ipv4Cidr, LookupKey, Map, MapEntry, MapKey, MapVerdict, Match,
    Owner, Proto, Rule, Ruleset, Set, SetKey, RANDOM_MODULUS,
};
pub use names::{hash_and_truncate, sha256};
pub use overlay::untrack_overlay;
pub use renderer::{
    render, render_with_ids, udp_dnat_targets, Renderer, ServiceKey, ServiceObjects, Synced,
};
pub use repair::{Loaded, LoadedBase, LoadedChain};
pub use trace::{trace, trace_detailed, DnatTarget, Origin, Packet, Trace, Verdict};
