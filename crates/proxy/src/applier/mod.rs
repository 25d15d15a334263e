//! Loads a rendered ruleset into the node's network namespace over nfnetlink, one atomic
//! transaction per sync; `nft` is needed only to look ([`Applier::list`]).
//!
//! Normally only the `Renderer`'s difference is sent, so a change costs the same with 10
//! or 10,000 Services; an empty one is skipped. The first load, a periodic resync
//! ([`Applier::force_resync`]) and any load after a failure instead verify and repair:
//! unless the namespace's ruleset generation shows that nothing was committed since our
//! own last transaction, the table is read back from the kernel and only what differs
//! from the desired ruleset is sent (`Ruleset::repair`). The elements of dynamic sets (ClientIP affinity) are never
//! read nor touched, so a resync keeps every client's endpoint. Conntrack entries of UDP
//! endpoints that left are deleted over the same socket.
//!
//! All of that goes through [`NftBackend`]; the real one is [`NetnsNft`], the tests' a
//! recording fake of the kernel's table.

mod backend;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinet_proxy_rules::{Change, Renderer, Ruleset, Synced, Update};

use crate::netlink::{loaded_forms, NetlinkError};

pub use backend::{NetnsNft, NftBackend};

/// What can go wrong loading or listing the table.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("ruleset is for table {got:?}, this applier owns {want:?}")]
    TableMismatch { want: String, got: String },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("{program} failed ({status}): {stderr}")]
    Iptables {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("nft {what} failed ({status}): {stderr}")]
    Nft {
        what: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// The result of one `apply_synced` or `reconcile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The kernel holds the desired table; `duration` covers reading it back (if done)
    /// and the transaction.
    Applied {
        duration: Duration,
        /// Whether the kernel's table was verified first (read back and repaired, or
        /// found untouched by its generation), else only the Renderer's difference sent.
        full: bool,
        /// How many object changes were sent (0: the kernel already held it all).
        changes: usize,
        /// UDP endpoints that left the ruleset whose conntrack entries were flushed.
        flushed_udp: Vec<SocketAddrV4>,
    },
    /// The Renderer found nothing to change.
    Unchanged,
}

/// Loads one table inside one network namespace.
#[derive(Debug)]
pub struct Applier<B = NetnsNft> {
    netns: PathBuf,
    table: String,
    nsenter: PathBuf,
    nft: PathBuf,
    /// Whether the kernel holds what was last sent; false makes the next load read the
    /// table back and repair it.
    loaded: bool,
    backend: B,
    /// The namespace's ruleset generation right after our last successful transaction,
    /// when no one else committed around it: while the kernel still reports it, the
    /// kernel holds exactly what we sent.
    generation: Option<u32>,
}

impl Applier {
    /// An applier for table `ip <table>` in the namespace at `netns`
    /// (e.g. `/run/netns/kinet-node-1` or `/proc/<pid>/ns/net`).
    pub fn new(netns: impl Into<PathBuf>, table: impl Into<String>) -> Applier {
        let netns = netns.into();
        Applier::with_backend(netns.clone(), table, NetnsNft::new(netns))
    }
}

impl<B: NftBackend> Applier<B> {
    /// An applier that reaches the kernel through `backend`.
    pub fn with_backend(netns: impl Into<PathBuf>, table: impl Into<String>, backend: B) -> Self {
        Applier {
            netns: netns.into(),
            table: table.into(),
            nsenter: "nsenter".into(),
            nft: "nft".into(),
            loaded: false,
            backend,
            generation: None,
        }
    }

    /// Uses another `nft` binary for [`Applier::list`] (tests, unusual installs).
    pub fn with_nft(mut self, nft: impl Into<PathBuf>) -> Self {
        self.nft = nft.into();
        self
    }

    pub fn netns(&self) -> &Path {
        &self.netns
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the next load will read the table back and repair it.
    pub fn needs_resync(&self) -> bool {
        !self.loaded
    }

    /// Makes the next load read the table back and repair it (periodic resync: repairs
    /// rules someone else changed or deleted).
    pub fn force_resync(&mut self) {
        self.loaded = false;
    }

    /// Loads what a `Renderer::sync` found: its update when the kernel holds the previous
    /// state, else a repair of the table towards the renderer's whole ruleset; then
    /// flushes removed UDP flows.
    ///
    /// A resync first asks for the ruleset generation: if nothing was committed since our
    /// last transaction, the kernel holds what we sent and reading it back would find
    /// nothing; otherwise (a hand edit, another table's load, a failed sync) the table is
    /// read back and repaired.
    pub fn apply_synced(&mut self, renderer: &Renderer, synced: Synced) -> Result<ApplyOutcome> {
        let start = Instant::now();
        let resync = !self.loaded;
        let intact = self.loaded || self.untouched()?;
        let outcome = match synced.update.filter(|_| intact) {
            Some(u) if u.is_empty() && !resync => return Ok(ApplyOutcome::Unchanged),
            Some(u) => {
                self.check_table(&u.table)?;
                if u.is_empty() {
                    self.loaded = true;
                } else {
                    self.send(&u, None)?;
                }
                (start, resync, u.changes.len())
            }
            None => self.repair(&renderer.ruleset())?,
        };
        Ok(self.applied(outcome, &synced.removed_udp))
    }

    /// Whether no transaction was committed in the namespace since our last one.
    fn untouched(&mut self) -> Result<bool> {
        let Some(ours) = self.generation else {
            return Ok(false);
        };
        Ok(self.backend.generation()? == ours)
    }

    /// Reads the table back and sends only what differs from `rs` (all of it if the
    /// table is absent), leaving dynamic sets' elements alone.
    pub fn reconcile(&mut self, rs: &Ruleset) -> Result<ApplyOutcome> {
        let outcome = self.repair(rs)?;
        Ok(self.applied(outcome, &[]))
    }

    fn repair(&mut self, rs: &Ruleset) -> Result<(Instant, bool, usize)> {
        self.check_table(rs.table())?;
        let start = Instant::now();
        self.loaded = false;
        self.generation = None;
        // Taken first: a commit by anyone while we read shows as a later generation.
        let before = self.backend.generation()?;
        let read = self.backend.read_table(&self.table);
        let update = match read {
            Ok(kernel) => rs.repair(kernel.as_ref(), loaded_forms),
            // A table holding what kinet never loads, or one that kept changing: start over.
            Err(e @ (NetlinkError::Malformed(_) | NetlinkError::Interrupted)) => {
                tracing::warn!(table = %self.table, error = %e, "replacing the table");
                let mut u = rs.repair(None, loaded_forms);
                u.changes.insert(0, Change::DeleteTable);
                u
            }
            Err(e) => {
                self.backend.reset();
                return Err(e.into());
            }
        };
        if update.is_empty() {
            self.generation = Some(before);
            self.loaded = true;
        } else {
            self.send(&update, Some(before))?;
        }
        Ok((start, true, update.changes.len()))
    }

    /// Sends one transaction; until it succeeds the kernel state is unknown. `before` is
    /// the generation the update was computed against (else read now).
    fn send(&mut self, update: &Update, before: Option<u32>) -> Result<()> {
        self.loaded = false;
        self.generation = None;
        let backend = &mut self.backend;
        let result = before
            .map_or_else(|| backend.generation(), Ok)
            .and_then(|before| {
                backend.apply(update)?;
                Ok((before, backend.generation()?))
            });
        let (before, after) = match result {
            Ok(gens) => gens,
            Err(e) => {
                // Unread replies may be left in it: the next load starts afresh.
                self.backend.reset();
                return Err(e.into());
            }
        };
        // Exactly one commit in between: ours. Else someone else's too, unseen.
        self.generation = (after == before.wrapping_add(1)).then_some(after);
        self.loaded = true;
        Ok(())
    }

    /// The outcome of a load that took from `start`, after flushing the conntrack entries
    /// of `removed_udp` (a failed flush only leaves flows to expire).
    fn applied(
        &mut self,
        (start, full, changes): (Instant, bool, usize),
        removed_udp: &[SocketAddrV4],
    ) -> ApplyOutcome {
        let duration = start.elapsed();
        let mut flushed_udp = Vec::new();
        for ep in removed_udp {
            match self.backend.flush_udp_to(*ep) {
                Ok(_) => flushed_udp.push(*ep),
                Err(e) => tracing::warn!(%ep, error = %e, "conntrack flush failed"),
            }
        }
        ApplyOutcome::Applied {
            duration,
            full,
            changes,
            flushed_udp,
        }
    }

    /// The table as the kernel has it (`nft list table`), or `None` if absent. Only for
    /// people and tests to look at: loading never runs `nft`.
    pub fn list(&self) -> Result<Option<String>> {
        let t = self.table.clone();
        match self.nft(&["list", "table", "ip", &t], "list") {
            Ok(out) => Ok(Some(out)),
            Err(ApplyError::Nft { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the table (proxy shutdown); absent is fine.
    pub fn delete(&mut self) -> Result<()> {
        self.loaded = false;
        let update = Update {
            table: self.table.clone(),
            changes: vec![Change::DeleteTable],
        };
        self.send(&update, None)?;
        self.loaded = false;
        self.generation = None;
        Ok(())
    }

    fn check_table(&self, table: &str) -> Result<()> {
        if table != self.table {
            return Err(ApplyError::TableMismatch {
                want: self.table.clone(),
                got: table.to_string(),
            });
        }
        Ok(())
    }

    /// Runs `nsenter --net=<ns> nft <args>`, returning stdout.
    fn nft(&self, args: &[&str], what: &'static str) -> Result<String> {
        let out = Command::new(&self.nsenter)
            .arg(format!("--net={}", self.netns.display()))
            .arg(&self.nft)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ApplyError::Spawn {
                program: format!("{} {}", self.nsenter.display(), self.nft.display()),
                source,
            })?;
        if !out.status.success() {
            return Err(ApplyError::Nft {
                what,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
