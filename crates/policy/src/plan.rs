//! From the table the kernel holds to the desired one, in one transaction. A pod that came,
//! went or moved in or out of a selector changes set and map elements only; a policy created,
//! changed or deleted adds or removes its sets, counter and pods' chains and refills the chains
//! it touches. Only a table the enforcer knows nothing of (first sync, after a failure, a
//! resync) is replaced whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ruleset::{Chain, Element, Rule, Ruleset, Set};

/// One change to the table, in the order a transaction must make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new set, empty (its elements follow as `AddToSet`).
    AddSet(Set),
    AddCounter(String),
    /// A new regular chain, empty (its rules follow as `AddRule`).
    AddChain(String),
    DeleteFromSet {
        set: String,
        element: Element,
    },
    AddToSet {
        set: String,
        element: Element,
    },
    /// Remove every rule of a chain (before it is refilled or deleted).
    FlushChain(String),
    AddRule {
        chain: String,
        rule: Rule,
    },
    DeleteFromMap {
        map: String,
        addr: Ipv4Addr,
    },
    /// `addr : jump chain`.
    AddToMap {
        map: String,
        addr: Ipv4Addr,
        chain: String,
    },
    DeleteChain(String),
    DeleteSet(String),
    DeleteCounter(String),
}

/// What one sync sends the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Replace the whole table (delete and re-create it in the same transaction).
    Load(Ruleset),
    /// Change table `ip <table>` in place.
    Changes { table: String, changes: Vec<Change> },
    /// Remove table `ip <name>` (the agent stopping), whether or not it is there.
    Delete(String),
}

impl Change {
    /// The change as an `nft -f` line, in table `ip <table>`.
    pub fn to_nft(&self, table: &str) -> String {
        let t = format!("ip {table}");
        match self {
            Change::AddSet(s) => s.declaration(table),
            Change::AddCounter(c) => format!("add counter {t} {c}"),
            Change::AddChain(c) => format!("add chain {t} {c}"),
            Change::DeleteFromSet { set, element } => {
                format!("delete element {t} {set} {{ {element} }}")
            }
            Change::AddToSet { set, element } => format!("add element {t} {set} {{ {element} }}"),
            Change::FlushChain(c) => format!("flush chain {t} {c}"),
            Change::AddRule { chain, rule } => format!("add rule {t} {chain} {}", rule.to_nft()),
            Change::DeleteFromMap { map, addr } => format!("delete element {t} {map} {{ {addr} }}"),
            Change::AddToMap { map, addr, chain } => {
                format!("add element {t} {map} {{ {addr} : jump {chain} }}")
            }
            Change::DeleteChain(c) => format!("delete chain {t} {c}"),
            Change::DeleteSet(s) => format!("delete set {t} {s}"),
            Change::DeleteCounter(c) => format!("delete counter {t} {c}"),
        }
    }
}

impl Update {
    /// The update as `nft -f` input.
    pub fn to_nft(&self) -> String {
        match self {
            Update::Load(rs) => rs.to_nft(),
            Update::Delete(table) => format!("add table ip {table}\ndelete table ip {table}\n"),
            Update::Changes { table, changes } => {
                let mut out = String::new();
                for c in changes {
                    let _ = writeln!(out, "{}", c.to_nft(table));
                }
                out
            }
        }
    }
}

/// What takes the kernel from `loaded` (what the last successful sync put there; `None` when
/// unknown: first sync, after a failure, on a resync) to `desired`; `None` when nothing.
pub fn plan(loaded: Option<&Ruleset>, desired: &Ruleset) -> Option<Update> {
    let Some(old) = loaded.filter(|l| same_frame(l, desired)) else {
        return Some(Update::Load(desired.clone()));
    };
    let mut out = Vec::new();
    fn by_name(rs: &Ruleset) -> BTreeMap<&str, &Set> {
        rs.sets.iter().map(|s| (s.name.as_str(), s)).collect()
    }
    fn regular(rs: &Ruleset) -> BTreeMap<&str, &Chain> {
        rs.chains
            .iter()
            .filter(|c| c.hook.is_none())
            .map(|c| (c.name.as_str(), c))
            .collect()
    }
    let (old_sets, new_sets) = (by_name(old), by_name(desired));
    let (old_chains, new_chains) = (regular(old), regular(desired));

    // New objects first, so rules and elements can refer to them.
    for (name, set) in &new_sets {
        if !old_sets.contains_key(name) {
            out.push(Change::AddSet(Set {
                name: set.name.to_string(),
                kind: set.kind,
                comment: set.comment.clone(),
                elements: BTreeSet::new(),
            }));
            out.extend(set.elements.iter().map(|e| Change::AddToSet {
                set: name.to_string(),
                element: e.clone(),
            }));
        }
    }
    out.extend(
        desired
            .counters
            .difference(&old.counters)
            .map(|c| Change::AddCounter(c.clone())),
    );
    for name in new_chains.keys().filter(|c| !old_chains.contains_key(*c)) {
        out.push(Change::AddChain(name.to_string()));
    }
    // Memberships of the sets both have.
    let mut adds = Vec::new();
    for (name, new) in &new_sets {
        let Some(was) = old_sets.get(name) else {
            continue;
        };
        let change = |e: &Element, add: bool| {
            let (set, element) = (name.to_string(), e.clone());
            if add {
                Change::AddToSet { set, element }
            } else {
                Change::DeleteFromSet { set, element }
            }
        };
        out.extend(
            was.elements
                .difference(&new.elements)
                .map(|e| change(e, false)),
        );
        adds.extend(
            new.elements
                .difference(&was.elements)
                .map(|e| change(e, true)),
        );
    }
    out.append(&mut adds);
    // Chains whose rules changed are refilled; new ones filled.
    for (name, chain) in &new_chains {
        match old_chains.get(name) {
            Some(was) if was.rules == chain.rules => continue,
            Some(_) => out.push(Change::FlushChain(name.to_string())),
            None => {}
        }
        out.extend(chain.rules.iter().map(|r| Change::AddRule {
            chain: name.to_string(),
            rule: r.clone(),
        }));
    }
    map_changes(old, desired, &mut out);
    // What is gone, once nothing refers to it.
    for name in old_chains.keys().filter(|c| !new_chains.contains_key(*c)) {
        out.push(Change::FlushChain(name.to_string()));
        out.push(Change::DeleteChain(name.to_string()));
    }
    for name in old_sets.keys().filter(|s| !new_sets.contains_key(*s)) {
        out.push(Change::DeleteSet(name.to_string()));
    }
    out.extend(
        old.counters
            .difference(&desired.counters)
            .map(|c| Change::DeleteCounter(c.clone())),
    );
    (!out.is_empty()).then(|| Update::Changes {
        table: desired.table.clone(),
        changes: out,
    })
}

/// Whether the parts that never change in place match: the table, its maps and base chains.
fn same_frame(a: &Ruleset, b: &Ruleset) -> bool {
    let base = |rs: &Ruleset| -> Vec<Chain> {
        rs.chains
            .iter()
            .filter(|c| c.hook.is_some())
            .cloned()
            .collect()
    };
    a.table == b.table
        && a.maps.keys().eq(b.maps.keys())
        && base(a) == base(b)
        // Sets of one name keep their type: the name carries the rule and kind.
        && a.sets.iter().all(|s| {
            b.set(&s.name)
                .is_none_or(|t| (t.kind, &t.comment) == (s.kind, &s.comment))
        })
}

/// Verdict-map elements deleted (also those jumping to chains about to go), then added.
fn map_changes(old: &Ruleset, desired: &Ruleset, out: &mut Vec<Change>) {
    let mut adds = Vec::new();
    for (name, new) in &desired.maps {
        let was = &old.maps[name];
        let keys: BTreeSet<_> = was.keys().chain(new.keys()).collect();
        for addr in keys {
            let (before, now) = (was.get(addr), new.get(addr));
            if before == now {
                continue;
            }
            if before.is_some() {
                out.push(Change::DeleteFromMap {
                    map: name.clone(),
                    addr: *addr,
                });
            }
            if let Some(chain) = now {
                adds.push(Change::AddToMap {
                    map: name.clone(),
                    addr: *addr,
                    chain: chain.clone(),
                });
            }
        }
    }
    out.append(&mut adds);
}
