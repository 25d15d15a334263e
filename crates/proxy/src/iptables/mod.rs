//! kube-proxy's iptables mode in a node's namespace: [`IptablesApplier`] loads
//! `kinet-proxy-iptables`' chains with `iptables-restore --noflush` (the iptables-nft
//! backend), one transaction per sync: everything (replacing what a previous run left) on
//! the first sync, a resync or after a failure, else only the chains that changed.
//! [`ProxyMode`] picks the mode; [`hand_over`] removes the other mode's rules once this
//! mode's are loaded, so Services keep answering through a switch.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Instant;

use kinet_proxy_iptables::{cleanup_restore, full_restore, partial_restore, Saved, Tables};

use crate::applier::{ApplyError, ApplyOutcome, Result};
use crate::netlink::NftSocket;
use crate::Applier;

/// How Services become kernel rules (`kinet up --proxy-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// kube-proxy's nftables layout in `table ip kinet`, over nfnetlink.
    #[default]
    Nftables,
    /// kube-proxy's iptables layout (`KUBE-SERVICES`, ...) through `iptables-restore`.
    Iptables,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProxyMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "nftables" => Ok(ProxyMode::Nftables),
            "iptables" => Ok(ProxyMode::Iptables),
            other => Err(format!(
                "unknown proxy mode {other:?} (kinet has nftables and iptables)"
            )),
        }
    }
}

/// The two programs the applier runs, and conntrack; the real ones are [`NetnsIptables`].
pub trait IptablesBackend {
    /// `iptables-save` of the `filter` and `nat` tables.
    fn save(&mut self) -> Result<String>;
    /// `iptables-restore --noflush` of `text`: one transaction.
    fn restore(&mut self, text: &str) -> Result<()>;
    /// Deletes the conntrack entries of UDP flows to `ep`; how many.
    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize>;
}

/// `iptables-save` / `iptables-restore` run in the namespace at `netns` via `nsenter`;
/// conntrack over a netlink socket opened there at first use.
#[derive(Debug)]
pub struct NetnsIptables {
    netns: PathBuf,
    conntrack: Option<NftSocket>,
}

impl NetnsIptables {
    pub fn new(netns: impl Into<PathBuf>) -> NetnsIptables {
        NetnsIptables {
            netns: netns.into(),
            conntrack: None,
        }
    }

    fn run(&self, program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
        let spawn_error = |source| ApplyError::Spawn {
            program: format!("prlimit nsenter {program}"),
            source,
        };
        // iptables-nft recurses over the table: its save overflows the default 8 MiB stack
        // at about 10,000 Services (SIGSEGV), so it runs with the stack limit lifted.
        let mut child = Command::new("prlimit")
            .args(["--stack=unlimited", "nsenter"])
            .arg(format!("--net={}", self.netns.display()))
            .arg(program)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).map_err(spawn_error)?;
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if !out.status.success() {
            return Err(ApplyError::Iptables {
                program: program.to_string(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl IptablesBackend for NetnsIptables {
    fn save(&mut self) -> Result<String> {
        let mut text = self.run("iptables-save", &["-t", "filter"], None)?;
        text.push_str(&self.run("iptables-save", &["-t", "nat"], None)?);
        Ok(text)
    }

    fn restore(&mut self, text: &str) -> Result<()> {
        self.run("iptables-restore", &["--noflush"], Some(text))
            .map(drop)
    }

    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize> {
        let socket = match &mut self.conntrack {
            Some(s) => s,
            None => self.conntrack.insert(NftSocket::open_in(&self.netns)?),
        };
        socket.flush_udp_to(ep).map_err(|e| {
            self.conntrack = None;
            e.into()
        })
    }
}

/// Loads one node's kube-proxy chains, remembering what the kernel holds.
#[derive(Debug)]
pub struct IptablesApplier<B = NetnsIptables> {
    backend: B,
    /// What the last successful transaction left; `None`: unknown, so the next sync
    /// reads the kernel back and rewrites everything.
    loaded: Option<Tables>,
    /// Where the last successful transaction sends UDP (kept through a forced resync).
    udp_targets: BTreeSet<SocketAddrV4>,
}

impl IptablesApplier {
    pub fn new(netns: impl Into<PathBuf>) -> IptablesApplier {
        IptablesApplier::with_backend(NetnsIptables::new(netns))
    }
}

impl<B: IptablesBackend> IptablesApplier<B> {
    pub fn with_backend(backend: B) -> Self {
        IptablesApplier {
            backend,
            loaded: None,
            udp_targets: BTreeSet::new(),
        }
    }

    /// Makes the next sync rewrite everything (periodic resync: repairs hand edits).
    pub fn force_resync(&mut self) {
        self.loaded = None;
    }

    /// One transaction taking the kernel to `desired`: only the changed chains when the
    /// kernel holds the last sync's, else everything.
    pub fn apply(&mut self, desired: Tables) -> Result<ApplyOutcome> {
        let start = Instant::now();
        let (text, full) = match self.loaded.take() {
            Some(last) => match partial_restore(&last, &desired) {
                Some(text) => (text, false),
                None => {
                    self.loaded = Some(last);
                    return Ok(ApplyOutcome::Unchanged);
                }
            },
            None => {
                let saved = Saved::parse(&self.backend.save()?);
                (full_restore(&desired, &saved), true)
            }
        };
        self.backend.restore(&text)?;
        let duration = start.elapsed();
        let udp_targets = desired.udp_targets();
        let gone = std::mem::replace(&mut self.udp_targets, udp_targets);
        self.loaded = Some(desired);
        Ok(ApplyOutcome::Applied {
            duration,
            full,
            changes: text.lines().filter(|l| l.starts_with(':')).count(),
            flushed_udp: self.flush(gone.difference(&self.udp_targets).copied().collect()),
        })
    }

    /// Deletes the conntrack entries of UDP endpoints that left; a failed flush only
    /// leaves their flows to idle out. Those flushed.
    fn flush(&mut self, gone: Vec<SocketAddrV4>) -> Vec<SocketAddrV4> {
        let mut flushed = Vec::new();
        for ep in gone {
            match self.backend.flush_udp_to(ep) {
                Ok(_) => flushed.push(ep),
                Err(e) => tracing::warn!(%ep, error = %e, "conntrack flush failed"),
            }
        }
        flushed
    }

    /// Removes every chain and jump of kube-proxy's; whether there was any.
    pub fn remove_all(&mut self) -> Result<bool> {
        self.loaded = None;
        self.udp_targets.clear();
        match cleanup_restore(&Saved::parse(&self.backend.save()?)) {
            Some(text) => self.backend.restore(&text).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Removes the rules of the mode that is not `mode` from the namespace at `netns`: the
/// nftables table, or kube-proxy's iptables chains. Absent rules are fine.
pub fn hand_over(mode: ProxyMode, netns: &Path, nft_table: &str) -> Result<()> {
    match mode {
        ProxyMode::Iptables => Applier::new(netns, nft_table).delete(),
        ProxyMode::Nftables if iptables_installed() => {
            IptablesApplier::new(netns).remove_all().map(drop)
        }
        // Without iptables no iptables-mode proxy can have run here.
        ProxyMode::Nftables => Ok(()),
    }
}

fn iptables_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| p.join("iptables-restore").is_file())
    })
}

#[cfg(test)]
mod tests;
