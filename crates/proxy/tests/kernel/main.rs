//! Root-only tests against the real kernel, all in network namespaces the
//! tests create and remove: golden rulesets through real `nft`, the applier,
//! packets through the rules, and the sync loop against an API server.

mod applier;
mod bridge;
mod golden;
mod incremental;
mod iptables;
mod netlink;
mod objects;
mod packet;
mod policy;
mod support;
mod sync_loop;
