//! Loads a rendered ruleset into the node's network namespace, one atomic
//! transaction per sync: full loads with `nsenter --net=<ns> nft -f -`,
//! differences as one nfnetlink batch (`crate::netlink`), which skips nft's
//! dump of the whole table.
//!
//! The first load (and any load after a failure or `force_full_sync`) is full:
//! the text deletes and re-creates the table. After that only the difference
//! is sent (a `Renderer` update, or `Ruleset::update_from` the last ruleset), so
//! a change costs the same with 10 or 10,000 Services; an empty one is skipped.

use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinet_proxy_rules::{Renderer, Ruleset, Synced, Update};

use crate::conntrack::{udp_endpoints, Conntrack};
use crate::netlink::{NetlinkError, NftSocket};

/// What can go wrong talking to nft.
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
    #[error("netlink update failed: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("nft {what} failed ({status}): {stderr}")]
    Nft {
        what: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// The result of one `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The transaction was loaded; `duration` covers spawning nft until it exited.
    Applied {
        duration: Duration,
        /// Whether the whole table was reloaded (else only the difference).
        full: bool,
        /// UDP endpoints that left the ruleset whose conntrack entries were flushed.
        flushed_udp: Vec<SocketAddrV4>,
    },
    /// Same text as the last successful load: nothing to do.
    Unchanged,
}

/// Runs nft for one table inside one network namespace.
#[derive(Debug)]
pub struct Applier {
    netns: PathBuf,
    table: String,
    nsenter: PathBuf,
    nft: PathBuf,
    /// Whether the kernel holds what was last sent; false forces a full load.
    loaded: bool,
    /// The last ruleset `apply` loaded, to diff the next one against.
    last: Option<Ruleset>,
    /// UDP DNAT targets of the last successful load, to find removed ones.
    last_udp: Vec<SocketAddrV4>,
    conntrack: Option<Conntrack>,
    /// Opened at the first update and kept: it stays in the namespace it was made in.
    socket: Option<NftSocket>,
}

impl Applier {
    /// An applier for table `ip <table>` in the namespace at `netns`
    /// (e.g. `/run/netns/kinet-node-1` or `/proc/<pid>/ns/net`).
    /// Looks for the `conntrack` tool once; without it stale UDP flows are
    /// left to expire (see `conntrack_available`).
    pub fn new(netns: impl Into<PathBuf>, table: impl Into<String>) -> Applier {
        let netns = netns.into();
        let conntrack = Conntrack::detect(&netns);
        if conntrack.is_none() {
            tracing::warn!(
                "conntrack tool not found: stale UDP flows to removed endpoints are not flushed"
            );
        }
        Applier {
            netns,
            table: table.into(),
            nsenter: "nsenter".into(),
            nft: "nft".into(),
            loaded: false,
            last: None,
            last_udp: Vec::new(),
            conntrack,
            socket: None,
        }
    }

    /// Uses another `nft` binary (tests, unusual installs).
    pub fn with_nft(mut self, nft: impl Into<PathBuf>) -> Applier {
        self.nft = nft.into();
        self
    }

    pub fn netns(&self) -> &Path {
        &self.netns
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether removed UDP endpoints get their conntrack entries flushed.
    pub fn conntrack_available(&self) -> bool {
        self.conntrack.is_some()
    }

    /// Whether the next `apply` will load even an unchanged ruleset.
    pub fn needs_full_sync(&self) -> bool {
        !self.loaded
    }

    /// Makes the next `apply` load in full (periodic resync: repairs rules
    /// someone else changed or deleted).
    pub fn force_full_sync(&mut self) {
        self.loaded = false;
    }

    /// Loads `rs` in one transaction, sending only its difference to the last `apply`
    /// when the kernel holds that; unchanged rules are skipped.
    pub fn apply(&mut self, rs: &Ruleset) -> Result<ApplyOutcome> {
        self.check_table(rs)?;
        let update = match (&self.last, self.loaded) {
            (Some(old), true) => rs.update_from(old),
            _ => None,
        };
        let udp = udp_endpoints(rs);
        let removed: Vec<SocketAddrV4> = self
            .last_udp
            .iter()
            .filter(|e| udp.binary_search(e).is_err())
            .copied()
            .collect();
        self.last = None;
        let outcome = self.commit(update, || Cow::Borrowed(rs), &removed)?;
        self.last = Some(rs.clone());
        self.last_udp = udp;
        Ok(outcome)
    }

    /// Loads what a `Renderer::sync` found: its update when the kernel holds the previous
    /// state, else the renderer's whole ruleset; then flushes removed UDP flows.
    pub fn apply_synced(&mut self, renderer: &Renderer, synced: Synced) -> Result<ApplyOutcome> {
        self.commit(
            synced.update,
            || Cow::Owned(renderer.ruleset()),
            &synced.removed_udp,
        )
    }

    fn commit<'a>(
        &mut self,
        update: Option<Update>,
        full: impl FnOnce() -> Cow<'a, Ruleset>,
        removed_udp: &[SocketAddrV4],
    ) -> Result<ApplyOutcome> {
        let update = update.filter(|_| self.loaded);
        if update.as_ref().is_some_and(Update::is_empty) {
            return Ok(ApplyOutcome::Unchanged);
        }
        // Until this load succeeds the kernel state is unknown.
        self.loaded = false;
        let start = Instant::now();
        let is_full = match update {
            Some(u) => {
                self.check_table_name(&u.table)?;
                let socket = match &mut self.socket {
                    Some(s) => s,
                    None => self.socket.insert(NftSocket::open_in(&self.netns)?),
                };
                if let Err(e) = socket.apply(&u) {
                    // Unread replies may be left in it: the next update starts afresh.
                    self.socket = None;
                    return Err(e.into());
                }
                false
            }
            None => {
                let rs = full();
                self.check_table(&rs)?;
                self.nft(&["-f", "-"], Some(&rs.to_nft()), "load")?;
                true
            }
        };
        let duration = start.elapsed();
        self.loaded = true;
        let mut flushed_udp = Vec::new();
        if let Some(ct) = &self.conntrack {
            for ep in removed_udp {
                match ct.flush_udp_to(*ep) {
                    Ok(()) => flushed_udp.push(*ep),
                    Err(e) => tracing::warn!(%ep, error = %e, "conntrack flush failed"),
                }
            }
        }
        Ok(ApplyOutcome::Applied {
            duration,
            full: is_full,
            flushed_udp,
        })
    }

    /// Asks the kernel whether `rs` would load (`nft -c`), changing nothing.
    pub fn check(&self, rs: &Ruleset) -> Result<()> {
        self.check_table(rs)?;
        self.nft(&["-c", "-f", "-"], Some(&rs.to_nft()), "check")
            .map(drop)
    }

    /// The table as the kernel has it (`nft list table`), or `None` if absent.
    pub fn list(&self) -> Result<Option<String>> {
        let t = self.table.clone();
        match self.nft(&["list", "table", "ip", &t], None, "list") {
            Ok(out) => Ok(Some(out)),
            Err(ApplyError::Nft { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the table (proxy shutdown); absent is fine.
    pub fn delete(&mut self) -> Result<()> {
        self.loaded = false;
        self.last = None;
        self.last_udp.clear();
        let t = self.table.clone();
        // `add` first makes the delete idempotent, in one transaction.
        let text = format!("add table ip {t}\ndelete table ip {t}\n");
        self.nft(&["-f", "-"], Some(&text), "delete").map(drop)
    }

    fn check_table(&self, rs: &Ruleset) -> Result<()> {
        self.check_table_name(rs.table())
    }

    fn check_table_name(&self, table: &str) -> Result<()> {
        if table != self.table {
            return Err(ApplyError::TableMismatch {
                want: self.table.clone(),
                got: table.to_string(),
            });
        }
        Ok(())
    }

    /// Runs `nsenter --net=<ns> nft <args>` with `stdin`, returning stdout.
    fn nft(&self, args: &[&str], stdin: Option<&str>, what: &'static str) -> Result<String> {
        let mut cmd = Command::new(&self.nsenter);
        cmd.arg(format!("--net={}", self.netns.display()))
            .arg(&self.nft)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_err = |source| ApplyError::Spawn {
            program: format!("{} {}", self.nsenter.display(), self.nft.display()),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error means nft exited early; its stderr says why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
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
