//! The control loops against a real in-process API server. One test binary, because each
//! binary links the whole API server and CI disk is finite.

mod support;

mod endpoints_loop;
mod leaderelection;
mod lifecycle_events;
mod lifecycle_gc;
mod lifecycle_namespace;
mod lifecycle_nodes;
mod lifecycle_serviceaccounts;
mod loadbalancer;
mod scheduler;
mod supervision;
mod workloads;
mod workloads_daemonset;
mod workloads_nodeipam;
