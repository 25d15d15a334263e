//! `kinet bench`: benchmarks whose figures go to docs/performance.md. Each reports its results
//! as ratios against a baseline measured in the same run, so machines of different speed agree.

pub mod api;
pub mod controllers;
pub mod dns;
pub mod pods;
pub mod proxy;
mod stats;
