//! A kinet cluster's lifecycle, as library calls the `kinet` command makes: the state folder,
//! the detached control plane and node agents, the nodes' network, the add-ons, and
//! `up`/`down`/`status`. Also the process entry points the binary re-executes itself as
//! (`serve`, `agent`, the DNS and ingress images).
//!
//! Commands that run for a while report progress steps on stderr (kind's style); results a
//! person asks for are returned as values the CLI prints.

pub mod addons;
pub mod agent;
pub mod apiservers;
pub mod dns_image;
pub mod down;
pub mod duration;
pub mod egress;
pub mod external;
pub mod ingress_addon;
pub mod ingress_image;
pub mod join;
pub mod nodes;
pub mod policy;
pub mod policy_image;
pub mod prereqs;
pub mod probe;
pub mod process;
pub mod progress;
pub mod proxy_image;
pub mod proxy_mode;
pub mod proxy_rules;
pub mod published;
pub mod ready;
pub mod serve;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod tokens;
pub mod up;
