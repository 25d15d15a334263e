//! `iptables-restore --noflush` input, as kube-proxy writes it: a chain line
//! (`:KUBE-SVC-... - [0:0]`) flushes that chain, so each transaction rewrites exactly the
//! chains it names and leaves every other chain (and other programs' rules) alone.
//!
//! - [`full_restore`]: every chain, the built-in jumps re-inserted, and chains a previous
//!   run left behind (read from `iptables-save`) deleted. For the first sync, a resync, or
//!   after a failure.
//! - [`partial_restore`]: only the chains that differ from the last sync, plus `-X` for
//!   those that went away: kube-proxy's partial sync.
//! - [`cleanup_restore`]: removes all of it, for a switch to nftables mode.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::rule::Rule;
use crate::tables::{jumps, Chains, Table, Tables};

/// kube-proxy's chains and built-in jumps found in the kernel (`iptables-save`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// `KUBE-*` chains per table.
    pub chains: BTreeMap<Table, BTreeSet<String>>,
    /// Rules of built-in chains that jump to a `KUBE-*` chain, as saved (`CHAIN args`).
    pub jumps: BTreeMap<Table, Vec<String>>,
}

impl Saved {
    /// Reads `iptables-save` output; tables other than `filter` and `nat` are ignored.
    pub fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut table = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = Table::ALL.into_iter().find(|t| t.as_str() == name);
                continue;
            }
            let Some(t) = table else { continue };
            if let Some(decl) = line.strip_prefix(':') {
                let chain = decl.split(' ').next().unwrap_or_default();
                if chain.starts_with("KUBE-") {
                    saved.chains.entry(t).or_default().insert(chain.into());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let builtin = !rule.starts_with("KUBE-");
                if builtin && rule.split(' ').any(|w| w.starts_with("KUBE-")) {
                    saved.jumps.entry(t).or_default().push(rule.into());
                }
            }
        }
        saved
    }

    /// Whether anything of kube-proxy's is left.
    pub fn is_empty(&self) -> bool {
        self.chains.values().all(BTreeSet::is_empty) && self.jumps.values().all(Vec::is_empty)
    }

    fn chains(&self, t: Table) -> impl Iterator<Item = &String> {
        self.chains.get(&t).into_iter().flatten()
    }

    fn jumps(&self, t: Table) -> impl Iterator<Item = &String> {
        self.jumps.get(&t).into_iter().flatten()
    }
}

fn declare(out: &mut String, chain: &str) {
    let _ = writeln!(out, ":{chain} - [0:0]");
}

fn append(out: &mut String, chain: &str, rules: &[Rule]) {
    for r in rules {
        let _ = writeln!(out, "-A {chain}{}", r.args());
    }
}

/// All of `desired`, replacing whatever `saved` found: stale chains flushed and deleted,
/// the built-in jumps deleted and inserted again, all in one transaction.
pub fn full_restore(desired: &Tables, saved: &Saved) -> String {
    let jumps = jumps();
    let mut out = String::new();
    for t in Table::ALL {
        let chains = desired.chains(t);
        let stale: Vec<&String> = saved
            .chains(t)
            .filter(|c| !chains.contains_key(*c))
            .collect();
        let _ = writeln!(out, "*{t}");
        for chain in chains.keys().chain(stale.iter().copied()) {
            declare(&mut out, chain);
        }
        for rule in saved.jumps(t) {
            let _ = writeln!(out, "-D {rule}");
        }
        // Inserted at the top, in reverse, so they end up first and in order.
        for j in jumps.iter().rev().filter(|j| j.table == t) {
            let _ = writeln!(out, "-I {} 1{}", j.builtin, j.rule.args());
        }
        for (chain, rules) in chains {
            append(&mut out, chain, rules);
        }
        for chain in stale {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// The chains that differ between the last sync and this one; `None` if nothing does.
pub fn partial_restore(last: &Tables, next: &Tables) -> Option<String> {
    let mut out = String::new();
    for t in Table::ALL {
        let (old, new): (&Chains, &Chains) = (last.chains(t), next.chains(t));
        let changed: Vec<(&String, &Vec<Rule>)> = new
            .iter()
            .filter(|(name, rules)| old.get(*name) != Some(*rules))
            .collect();
        let gone: Vec<&String> = old.keys().filter(|c| !new.contains_key(*c)).collect();
        if changed.is_empty() && gone.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{t}");
        for chain in changed.iter().map(|(c, _)| *c).chain(gone.iter().copied()) {
            declare(&mut out, chain);
        }
        for (chain, rules) in &changed {
            append(&mut out, chain, rules);
        }
        for chain in gone {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");
    }
    (!out.is_empty()).then_some(out)
}

/// Removes the built-in jumps and every `KUBE-*` chain `saved` found; `None` if there is
/// nothing to remove.
pub fn cleanup_restore(saved: &Saved) -> Option<String> {
    if saved.is_empty() {
        return None;
    }
    let mut out = String::new();
    for t in Table::ALL {
        let _ = writeln!(out, "*{t}");
        for chain in saved.chains(t) {
            declare(&mut out, chain);
        }
        for rule in saved.jumps(t) {
            let _ = writeln!(out, "-D {rule}");
        }
        for chain in saved.chains(t) {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");
    }
    Some(out)
}
