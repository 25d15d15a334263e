//! The iptables renderer against golden files, the nftables renderer (packet by packet,
//! through both tracers) and its partial syncs.

// The nftables renderer's fixtures: both modes are tested on the same cluster.
#[path = "../../../proxy-rules/tests/rules/common/mod.rs"]
#[allow(dead_code)]
mod common;

mod cases;
mod golden;
mod restore;
mod trace;
