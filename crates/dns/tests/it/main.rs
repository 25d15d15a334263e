//! Integration tests: real sockets on loopback, queried with real `dig`.
//! One binary so they share a build.

mod cluster;
mod common;
mod forward;
mod reload;
