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
use std::net::Ipv4Addr;

use crate::model::{Chain, MapEntry, MapKey, MapVerdict, Rule, Ruleset, Set};
use crate::nft::{set_spec, write_key, write_rule_lines};

/// One step of an incremental update. Set definitions carry no elements: those come as
/// `AddSetElement`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddSet(Set),
    AddChain(String),
    FlushChain(String),
    AddRule {
        chain: String,
        rule: Rule,
    },
    DeleteMapElement {
        map: String,
        key: MapKey,
    },
    AddMapElement {
        map: String,
        key: MapKey,
        entry: MapEntry,
    },
    DeleteSetElement {
        set: String,
        addr: Ipv4Addr,
    },
    AddSetElement {
        set: String,
        addr: Ipv4Addr,
    },
    DeleteChain(String),
    DeleteSet(String),
}

/// The changes that turn one loaded ruleset into another, in an order the kernel accepts
/// as one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub table: String,
    pub changes: Vec<Change>,
}

impl Update {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The update as `nft -f` input (one transaction).
    pub fn to_nft(&self) -> String {
        let t = format!("ip {}", self.table);
        let mut out = String::new();
        for c in &self.changes {
            let _ = match c {
                Change::AddSet(s) => writeln!(out, "add set {t} {} {{ {} }}", s.name, set_spec(s)),
                Change::AddChain(c) => writeln!(out, "add chain {t} {c}"),
                Change::FlushChain(c) => writeln!(out, "flush chain {t} {c}"),
                Change::AddRule { chain, rule } => {
                    write_rule_lines(&mut out, &format!("add rule {t} {chain} "), rule);
                    Ok(())
                }
                Change::DeleteMapElement { map, key } => {
                    let _ = write!(out, "delete element {t} {map} {{ ");
                    write_key(&mut out, key);
                    writeln!(out, " }}")
                }
                Change::AddMapElement { map, key, entry } => {
                    let _ = write!(out, "add element {t} {map} {{ ");
                    write_key(&mut out, key);
                    write_entry(&mut out, entry);
                    writeln!(out, " }}")
                }
                Change::DeleteSetElement { set, addr } => {
                    writeln!(out, "delete element {t} {set} {{ {addr} }}")
                }
                Change::AddSetElement { set, addr } => {
                    writeln!(out, "add element {t} {set} {{ {addr} }}")
                }
                Change::DeleteChain(c) => writeln!(out, "delete chain {t} {c}"),
                Change::DeleteSet(s) => writeln!(out, "delete set {t} {s}"),
            };
        }
        out
    }
}

impl Ruleset {
    /// The update that turns `old` (what the kernel has) into `self`, or `None` when only a
    /// full load will do (another table, a changed base chain, map or set definition).
    pub fn update_from(&self, old: &Ruleset) -> Option<Update> {
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

        let mut out = Vec::new();
        for s in self
            .sets
            .iter()
            .filter(|s| !old_sets.contains_key(s.name.as_str()))
        {
            out.push(Change::AddSet(Set {
                elements: BTreeSet::new(),
                ..s.clone()
            }));
        }
        for c in self
            .chains
            .iter()
            .filter(|c| !old_chains.contains_key(c.name.as_str()))
        {
            out.push(Change::AddChain(c.name.clone()));
        }
        for c in &self.chains {
            match old_chains.get(c.name.as_str()) {
                Some(o) if o.rules == c.rules => continue,
                Some(_) => out.push(Change::FlushChain(c.name.clone())),
                None => {}
            }
            for rule in &c.rules {
                out.push(Change::AddRule {
                    chain: c.name.clone(),
                    rule: rule.clone(),
                });
            }
        }
        for (m, o) in self.maps.iter().zip(&old.maps) {
            for (key, entry) in &o.elements {
                if m.elements.get(key) != Some(entry) {
                    out.push(Change::DeleteMapElement {
                        map: m.name.clone(),
                        key: *key,
                    });
                }
            }
            for (key, entry) in &m.elements {
                if o.elements.get(key) != Some(entry) {
                    out.push(Change::AddMapElement {
                        map: m.name.clone(),
                        key: *key,
                        entry: entry.clone(),
                    });
                }
            }
        }
        let none = BTreeSet::new();
        for s in &self.sets {
            let before = old_sets.get(s.name.as_str()).map_or(&none, |o| &o.elements);
            for ip in before.difference(&s.elements) {
                out.push(Change::DeleteSetElement {
                    set: s.name.clone(),
                    addr: *ip,
                });
            }
            for ip in s.elements.difference(before) {
                out.push(Change::AddSetElement {
                    set: s.name.clone(),
                    addr: *ip,
                });
            }
        }
        let gone: Vec<&Chain> = old
            .chains
            .iter()
            .filter(|c| !new_chains.contains_key(c.name.as_str()))
            .collect();
        out.extend(gone.iter().map(|c| Change::FlushChain(c.name.clone())));
        out.extend(gone.iter().map(|c| Change::DeleteChain(c.name.clone())));
        for s in old
            .sets
            .iter()
            .filter(|s| !new_sets.contains_key(s.name.as_str()))
        {
            out.push(Change::DeleteSet(s.name.clone()));
        }
        Some(Update {
            table: self.table.clone(),
            changes: out,
        })
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
