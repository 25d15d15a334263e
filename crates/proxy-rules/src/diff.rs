//! Incremental updates: the nft commands that turn a loaded ruleset into a new one, as
//! kube-proxy's nftables mode does in its partial syncs. Only what changed is sent, so the
//! cost of an EndpointSlice change does not grow with the number of Services, and the
//! affinity sets of untouched services keep their entries.
//!
//! Order inside the one transaction: the table, new sets, maps and chains are declared;
//! changed chains are flushed and refilled, new chains filled; map and set elements are
//! deleted and added; removed chains are flushed and then deleted (they can reference each
//! other), and removed sets deleted last, once nothing refers to them. `Renderer::sync`
//! computes such updates from the Services that changed, `Ruleset::repair` from what the
//! kernel holds.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::model::{BaseChain, Map, MapEntry, MapKey, Rule, Set, SetKey};
use crate::nft::{
    map_spec, set_spec, write_add_table, write_base_chain, write_entry, write_key,
    write_rule_lines, write_set_element,
};

/// One step of an incremental update. Set definitions carry no elements: those come as
/// `AddSetElement`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Creates the table (with its comment) if it does not exist.
    AddTable(Option<String>),
    /// Removes the table and everything in it (absent is fine).
    DeleteTable,
    AddSet(Set),
    /// A verdict map's definition; its elements come as `AddMapElement`s.
    AddMap(Map),
    AddChain(String),
    AddBaseChain {
        name: String,
        base: BaseChain,
    },
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
        key: SetKey,
        addr: Ipv4Addr,
    },
    AddSetElement {
        set: String,
        key: SetKey,
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
                Change::AddTable(comment) => {
                    write_add_table(&mut out, &t, comment.as_deref());
                    Ok(())
                }
                // `add` first makes the delete succeed when the table is absent.
                Change::DeleteTable => writeln!(out, "add table {t}\ndelete table {t}"),
                Change::AddSet(s) => writeln!(out, "add set {t} {} {{ {} }}", s.name, set_spec(s)),
                Change::AddMap(m) => writeln!(out, "add map {t} {} {{ {} }}", m.name, map_spec(m)),
                Change::AddChain(c) => writeln!(out, "add chain {t} {c}"),
                Change::AddBaseChain { name, base } => {
                    write_base_chain(&mut out, &t, name, base);
                    Ok(())
                }
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
                Change::DeleteSetElement { set, key, addr } => {
                    let _ = write!(out, "delete element {t} {set} {{ ");
                    write_set_element(&mut out, *key, *addr);
                    writeln!(out, " }}")
                }
                Change::AddSetElement { set, key, addr } => {
                    let _ = write!(out, "add element {t} {set} {{ ");
                    write_set_element(&mut out, *key, *addr);
                    writeln!(out, " }}")
                }
                Change::DeleteChain(c) => writeln!(out, "delete chain {t} {c}"),
                Change::DeleteSet(s) => writeln!(out, "delete set {t} {s}"),
            };
        }
        out
    }
}
