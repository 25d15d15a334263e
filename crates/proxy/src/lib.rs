//! The per-node service proxy's side effects and sync loop.
//!
//! `kinet-proxy-rules` computes the desired nftables table as a pure function;
//! this crate puts it into a node's network namespace and keeps it current:
//!
//! - [`Applier`]: one nfnetlink transaction per sync ([`netlink`]): the
//!   Renderer's changes, or (first load, periodic resync, after a failure) a
//!   repair: the table read back from the kernel and only the difference sent,
//!   dynamic affinity sets untouched; empty updates skipped, each load timed,
//!   conntrack entries of removed UDP endpoints deleted over ctnetlink. `nft`
//!   is run only to list the table.
//! - [`run`]: reflectors on Services, EndpointSlices and the Node; each burst
//!   of changes becomes one debounced sync of a [`Renderer`] (which looks at and
//!   re-renders only the Services the watch events touched, [`dirty`]) + apply; a resync
//!   every 30 s;
//!   [`Metrics`] for sync counts, durations and network programming latency.
//! - [`iptables`]: kube-proxy's iptables mode instead ([`ProxyMode`]): chains rendered by
//!   `kinet-proxy-iptables`, loaded with `iptables-restore --noflush`, only changed
//!   chains after the first sync.
//! - [`rules_for`] / [`rules_in_listing`]: one Service's lines of the loaded
//!   ruleset or of a live `nft list table`, for `kinet proxy rules <ns>/<svc>`
//!   ([`rules_in_save`]: of a live `iptables-save`, in iptables mode).
//! - [`announce`] + [`LbAddresses`]: which node answers ARP for each
//!   LoadBalancer address (MetalLB L2 style) and holding it on a dummy link.
//! - [`health`]: healthCheckNodePort for `externalTrafficPolicy: Local`.
//! - [`healthz`]: the proxy's own `/healthz` and `/livez` (kube-proxy's port 10256): 503 once
//!   a change has waited for its sync too long.

pub mod announce;
mod applier;
pub mod dirty;
pub mod health;
pub mod healthz;
mod http;
pub mod iptables;
mod lbaddr;
mod metrics;
pub mod netlink;
mod node;
pub mod reflect;
mod rules_for;
mod sync;

pub use applier::{Applier, ApplyError, ApplyOutcome, NetnsNft, NftBackend};
pub use health::{health_checks, HealthCheck, HealthServer};
pub use healthz::{serve_healthz, ProxyHealthz};
pub use iptables::{hand_over, IptablesApplier, ProxyMode};
pub use kinet_proxy_iptables::rules_in_save;
pub use lbaddr::{LbAddrError, LbAddresses, LB_LINK};
pub use metrics::{metric_line, micros, serve_metrics, Metrics, MetricsSnapshot, MetricsSource};
pub use node::node_info;
pub use rules_for::{rules_for, rules_in_listing};
pub use sync::{run, run_with, SyncHealth, SyncOptions};

pub use kinet_proxy_rules::{render, NodeInfo, ProxyConfig, Renderer, Ruleset};
