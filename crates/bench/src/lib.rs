//! `kinet bench`: benchmarks whose figures go to docs/performance.md. Most report their results
//! as ratios against a baseline measured in the same run, so machines of different speed agree;
//! `up` reports absolute times (its comparisons, kind and k3s, do not run here).

pub mod api;
mod cluster;
pub mod containers;
pub mod controllers;
pub mod dns;
pub mod failover;
pub mod fill;
pub mod ingress;
pub mod join;
pub mod pods;
pub mod policy;
mod procs;
pub mod proxy;
mod proxy_iptables;
mod ready_traffic;
mod stats;
pub mod unpack;
pub mod up;
