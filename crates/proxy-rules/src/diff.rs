//! Incremental updates: the nft commands that turn a loaded ruleset into a new one, as
//! kube-proxy's nftables mode does in its partial syncs. Only what changed is sent, so the
//! cost of an EndpointSlice change does not grow with the number of Services, and the
//! affinity sets of untouched services keep their entries.
//!
//! Order inside the one transaction: new sets and chains are declared; changed chains are
//! flushed and refilled, new chains filled; map and set elements are deleted and added;
//! removed chains are flushed and then deleted (they can reference each other), and removed
//! sets deleted last, once nothing refers to them.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::model::{Chain, MapEntry, MapVerdict, Ruleset, Set};
use crate::nft::{set_spec, write_key, write_rule_lines};

impl Ruleset {
    /// Commands that turn `old` (what the kernel has) into `self`, or `None` when only a
    /// full load will do (another table, a changed base chain, map or set definition).
    /// An empty string means nothing changed.
    pub fn to_nft_update(&self, old: &Ruleset) -> Option<String> {
        if self.table != old.table || self.maps.len() != old.maps.len() {
            return None;
        }
        for (m, o) in self.maps.iter().zip(&old.maps) {
            if (&m.name, m.key, &m.comment) != (&o.name, o.key, &o.comment) {
                return None;
            }
        }
        let old_chains: HashMap<&str, &Chain> =
            old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let new_chains: HashMap<&str, &Chain> =
            self.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let old_sets: HashMap<&str, &Set> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let new_sets: HashMap<&str, &Set> =
            self.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        for c in &self.chains {
            match old_chains.get(c.name.as_str()) {
                Some(o) if o.base != c.base => return None,
                None if c.base.is_some() => return None,
                _ => {}
            }
        }
        if old
            .chains
            .iter()
            .any(|c| c.base.is_some() && !new_chains.contains_key(c.name.as_str()))
        {
            return None;
        }
        for s in &self.sets {
            if let Some(o) = old_sets.get(s.name.as_str()) {
                if (o.timeout_secs, &o.comment) != (s.timeout_secs, &s.comment) {
                    return None;
                }
            }
        }

        let t = format!("ip {}", self.table);
        let mut out = String::new();
        for s in self
            .sets
            .iter()
            .filter(|s| !old_sets.contains_key(s.name.as_str()))
        {
            let _ = writeln!(out, "add set {t} {} {{ {} }}", s.name, set_spec(s));
        }
        for c in self
            .chains
            .iter()
            .filter(|c| !old_chains.contains_key(c.name.as_str()))
        {
            let _ = writeln!(out, "add chain {t} {}", c.name);
        }
        for c in &self.chains {
            match old_chains.get(c.name.as_str()) {
                Some(o) if o.rules == c.rules => continue,
                Some(_) => {
                    let _ = writeln!(out, "flush chain {t} {}", c.name);
                }
                None => {}
            }
            let prefix = format!("add rule {t} {} ", c.name);
            for rule in &c.rules {
                write_rule_lines(&mut out, &prefix, rule);
            }
        }
        for (m, o) in self.maps.iter().zip(&old.maps) {
            for (key, entry) in &o.elements {
                if m.elements.get(key) != Some(entry) {
                    let _ = write!(out, "delete element {t} {} {{ ", m.name);
                    write_key(&mut out, key);
                    out.push_str(" }\n");
                }
            }
            for (key, entry) in &m.elements {
                if o.elements.get(key) != Some(entry) {
                    let _ = write!(out, "add element {t} {} {{ ", m.name);
                    write_key(&mut out, key);
                    write_entry(&mut out, entry);
                    out.push_str(" }\n");
                }
            }
        }
        let none = BTreeSet::new();
        for s in &self.sets {
            let before = old_sets.get(s.name.as_str()).map_or(&none, |o| &o.elements);
            for ip in before.difference(&s.elements) {
                let _ = writeln!(out, "delete element {t} {} {{ {ip} }}", s.name);
            }
            for ip in s.elements.difference(before) {
                let _ = writeln!(out, "add element {t} {} {{ {ip} }}", s.name);
            }
        }
        let gone: Vec<&Chain> = old
            .chains
            .iter()
            .filter(|c| !new_chains.contains_key(c.name.as_str()))
            .collect();
        for c in &gone {
            let _ = writeln!(out, "flush chain {t} {}", c.name);
        }
        for c in &gone {
            let _ = writeln!(out, "delete chain {t} {}", c.name);
        }
        for s in old
            .sets
            .iter()
            .filter(|s| !new_sets.contains_key(s.name.as_str()))
        {
            let _ = writeln!(out, "delete set {t} {}", s.name);
        }
        Some(out)
    }
}

fn write_entry(out: &mut String, entry: &MapEntry) {
    if let Some(c) = &entry.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
    out.push_str(" : ");
    match &entry.verdict {
        MapVerdict::Goto(c) => {
            let _ = write!(out, "goto {c}");
        }
        MapVerdict::Drop => out.push_str("drop"),
    }
}
