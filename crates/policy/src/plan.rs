//! From the table the kernel holds to the desired one, in one transaction: only element
//! changes when the two differ in set and map contents alone (a pod came, went, moved in or
//! out of a selector), else the whole table replaced.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ruleset::{Element, Ruleset};

/// One element added to or deleted from a set or verdict map of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementChange {
    DeleteFromSet {
        set: String,
        element: Element,
    },
    AddToSet {
        set: String,
        element: Element,
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
}

/// What one sync sends the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Replace the whole table (delete and re-create it in the same transaction).
    Load(Ruleset),
    /// Change elements of table `table`, deletions first.
    Elements {
        table: String,
        changes: Vec<ElementChange>,
    },
    /// Remove table `ip <name>` (the agent stopping), whether or not it is there.
    Delete(String),
}

impl Update {
    /// The update as `nft -f` input.
    pub fn to_nft(&self) -> String {
        match self {
            Update::Load(rs) => rs.to_nft(),
            Update::Delete(table) => format!("add table ip {table}\ndelete table ip {table}\n"),
            Update::Elements { table, changes } => {
                let mut out = String::new();
                for c in changes {
                    let _ = match c {
                        ElementChange::DeleteFromSet { set, element, .. } => {
                            writeln!(out, "delete element ip {table} {set} {{ {element} }}")
                        }
                        ElementChange::AddToSet { set, element, .. } => {
                            writeln!(out, "add element ip {table} {set} {{ {element} }}")
                        }
                        ElementChange::DeleteFromMap { map, addr } => {
                            writeln!(out, "delete element ip {table} {map} {{ {addr} }}")
                        }
                        ElementChange::AddToMap { map, addr, chain } => writeln!(
                            out,
                            "add element ip {table} {map} {{ {addr} : jump {chain} }}"
                        ),
                    };
                }
                out
            }
        }
    }
}

/// What takes the kernel from `loaded` (what the last successful sync put there; `None` when
/// unknown: first sync, after a failure, on a resync) to `desired`; `None` when nothing.
pub fn plan(loaded: Option<&Ruleset>, desired: &Ruleset) -> Option<Update> {
    let Some(loaded) = loaded.filter(|l| l.skeleton() == desired.skeleton()) else {
        return Some(Update::Load(desired.clone()));
    };
    let mut deletes = Vec::new();
    let mut adds = Vec::new();
    for (old, new) in loaded.sets.iter().zip(&desired.sets) {
        let change = |element: &Element, add: bool| {
            let (set, element) = (new.name.clone(), element.clone());
            if add {
                ElementChange::AddToSet { set, element }
            } else {
                ElementChange::DeleteFromSet { set, element }
            }
        };
        deletes.extend(
            old.elements
                .difference(&new.elements)
                .map(|e| change(e, false)),
        );
        adds.extend(
            new.elements
                .difference(&old.elements)
                .map(|e| change(e, true)),
        );
    }
    for (name, new) in &desired.maps {
        let old = &loaded.maps[name];
        let keys: BTreeSet<_> = old.keys().chain(new.keys()).collect();
        for addr in keys {
            let (was, now) = (old.get(addr), new.get(addr));
            if was == now {
                continue;
            }
            if was.is_some() {
                deletes.push(ElementChange::DeleteFromMap {
                    map: name.clone(),
                    addr: *addr,
                });
            }
            if let Some(chain) = now {
                adds.push(ElementChange::AddToMap {
                    map: name.clone(),
                    addr: *addr,
                    chain: chain.clone(),
                });
            }
        }
    }
    deletes.extend(adds);
    (!deletes.is_empty()).then(|| Update::Elements {
        table: desired.table.clone(),
        changes: deletes,
    })
}
