//! Loads, updates and read-backs over nfnetlink, without `nft`.
//!
//! `nft -f` of a few lines first dumps every chain of the table (its cache), which at
//! 10,000 Services costs over a second per update. Here an [`Update`] (a Renderer's
//! changes, a repair, or a whole table) becomes one nfnetlink batch ([`encode_update`],
//! pure) that an [`NftSocket`] opened in the node's network namespace sends and checks:
//! one atomic transaction, every message acknowledged, and a kernel error names the `nft`
//! line it came from. The bytes are those nft 1.0.6 sends for the same `Update::to_nft()`
//! text, so `nft list` prints the same table either way.
//!
//! [`NftSocket::read_table`] dumps a table's chains, rules, sets, maps and elements;
//! [`loaded_table`] (pure) turns the replies into the model `Ruleset::repair` compares
//! with, each rule in the canonical form [`loaded_forms`] also gives a desired rule. The
//! NetworkPolicy table reads back whole into its own model ([`loaded_policy`]), which
//! [`NftSocket::resync_policy`] plans from, sending only what differs.
//!
//! The same socket deletes stale UDP conntrack entries ([`NftSocket::flush_udp_to`]).
//!
//! What remains is the kernel's own commit cost: a batch that adds a rule with a
//! verdict (or deletes a verdict-map element) makes the kernel re-check the whole jump
//! graph once per base chain that reaches it, about 90 ms per such base chain at
//! 10,000 Services with 10 endpoints each (kernel 6.18).
//!
//! [`Update`]: kinet_proxy_rules::Update

mod conntrack;
mod encode;
mod expr;
mod policy;
mod policy_read;
mod read;
mod socket;
mod wire;

#[cfg(test)]
mod vectors;

pub use encode::{encode_update, loaded_forms, Batch};
pub use policy::{encode_policy, Lines};
pub use policy_read::loaded_policy;
pub use read::{loaded_table, Dumps, LoadedRule};
pub use socket::NftSocket;

use std::io;

/// A change the encoder cannot express the way nft would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Unsupported(String),
    #[error("rule in chain {chain}: {reason}")]
    Rule { chain: String, reason: String },
}

/// Why applying an update over netlink failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace: {0}")]
    Netns(#[from] kinet_netns::Error),
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The kernel refused a message; it aborted the whole transaction.
    #[error("{what}: {source}{}", if *.more > 0 { format!(" (and {} more errors)", .more) } else { String::new() })]
    Rejected {
        /// The `nft` line of the first refused message.
        what: String,
        source: io::Error,
        /// How many later messages were refused too.
        more: usize,
    },
    /// Every message was accepted but the commit failed.
    #[error("commit: {0}")]
    Commit(#[source] io::Error),
    /// The socket buffer overflowed with replies: whether the transaction was
    /// committed is unknown (a full load settles it).
    #[error("netlink replies lost (receive buffer overrun): outcome unknown")]
    RepliesLost,
    #[error("malformed netlink reply: {0}")]
    Malformed(String),
    /// The table changed while it was being read, every time it was tried.
    #[error("the table kept changing while it was read")]
    Interrupted,
}
