//! Rendered rulesets: golden files, incremental updates, packet traces and scale. One test binary
//! rather than four, to keep CI's target directory small.

mod common;

mod diff;
mod golden;
mod scale;
mod trace;
