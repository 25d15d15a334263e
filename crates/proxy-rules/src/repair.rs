//! Verify and repair: the difference between what the kernel holds for a table and the
//! desired ruleset, as one [`Update`]. A periodic resync reads the table back and sends
//! only this difference, so it costs what changed, and it never touches the elements of
//! dynamic sets (ClientIP affinity), which the packet path fills.
//!
//! The kernel's table is described in the model the Renderer produces ([`Loaded`]), with
//! one exception: rules stay in a loaded form `R`, one per kernel rule, produced by a
//! function the reader and `repair` share. Decoding kernel expressions back into
//! [`Match`](crate::Match)es would be a second encoder written backwards; comparing in the
//! loaded form needs none. The netlink reader uses each rule's expressions, the tests here
//! [`Rule::loaded_lines`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::diff::{Change, Update};
use crate::model::{BaseChain, Chain, Hook, Map, MapEntry, MapKey, Rule, Ruleset, Set};

/// A table as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<R> {
    pub chains: Vec<LoadedChain<R>>,
    /// Sets with their elements, except dynamic ones (with a timeout): those are the
    /// packet path's, not read and never changed.
    pub sets: Vec<Set>,
    pub maps: Vec<Map>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedChain<R> {
    pub name: String,
    pub base: Option<LoadedBase>,
    /// The chain's rules in kernel order, each in loaded form.
    pub rules: Vec<R>,
}

/// A base chain's attachment as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBase {
    pub kind: String,
    pub hook: Hook,
    pub priority: i32,
}

impl LoadedBase {
    /// `base` as the kernel holds it (`None` if its priority is not one nft accepts).
    pub fn of(base: &BaseChain) -> Option<LoadedBase> {
        Some(LoadedBase {
            kind: base.kind.to_string(),
            hook: base.hook,
            priority: base.priority_value()?,
        })
    }
}

fn loaded_base(c: &Chain) -> Option<Option<LoadedBase>> {
    match &c.base {
        Some(b) => LoadedBase::of(b).map(Some),
        None => Some(None),
    }
}

impl Ruleset {
    /// This ruleset as the kernel holds it after loading it, rules in the form `loaded`
    /// gives (one entry per kernel rule).
    pub fn as_loaded<R>(&self, loaded: impl Fn(&Rule) -> Vec<R>) -> Loaded<R> {
        Loaded {
            chains: self
                .chains
                .iter()
                .map(|c| LoadedChain {
                    name: c.name.clone(),
                    base: c.base.as_ref().and_then(LoadedBase::of),
                    rules: c.rules.iter().flat_map(&loaded).collect(),
                })
                .collect(),
            sets: self
                .sets
                .iter()
                .map(|s| Set {
                    elements: if s.timeout_secs.is_some() {
                        BTreeSet::new()
                    } else {
                        s.elements.clone()
                    },
                    ..s.clone()
                })
                .collect(),
            maps: self.maps.clone(),
        }
    }

    /// The update that turns `kernel` (`None`: no such table) into this ruleset. Only
    /// what differs is sent; a definition the kernel cannot change in place (a base chain's
    /// hook, a set's flags, a map's key) replaces the whole table.
    pub fn repair<R: PartialEq>(
        &self,
        kernel: Option<&Loaded<R>>,
        loaded: impl Fn(&Rule) -> Vec<R>,
    ) -> Update {
        let Some(k) = kernel else {
            return self.whole(false);
        };
        if !self.definitions_match(k) {
            return self.whole(true);
        }
        let k_chains: HashMap<&str, &LoadedChain<R>> =
            k.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let k_sets: HashMap<&str, &Set> = k.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let k_maps: HashMap<&str, &Map> = k.maps.iter().map(|m| (m.name.as_str(), m)).collect();

        let mut out = Vec::new();
        for s in self.sets.iter().filter(|s| !k_sets.contains_key(&*s.name)) {
            out.push(Change::AddSet(without_elements(s)));
        }
        for m in self.maps.iter().filter(|m| !k_maps.contains_key(&*m.name)) {
            out.push(Change::AddMap(Map {
                elements: BTreeMap::new(),
                ..m.clone()
            }));
        }
        for c in self
            .chains
            .iter()
            .filter(|c| !k_chains.contains_key(&*c.name))
        {
            out.push(add_chain(c));
        }
        for c in &self.chains {
            if let Some(kc) = k_chains.get(&*c.name) {
                let want: Vec<R> = c.rules.iter().flat_map(&loaded).collect();
                if kc.rules == want {
                    continue;
                }
                out.push(Change::FlushChain(c.name.clone()));
            }
            out.extend(add_rules(c));
        }
        let none = BTreeMap::new();
        let mut adds = Vec::new();
        for m in &self.maps {
            let before = k_maps.get(&*m.name).map_or(&none, |o| &o.elements);
            out.extend(
                differing(before, &m.elements).map(|key| Change::DeleteMapElement {
                    map: m.name.clone(),
                    key: *key,
                }),
            );
            adds.extend(add_map_elements(m, |key| before.get(key)));
        }
        out.extend(adds);
        let empty = BTreeSet::new();
        for s in self.sets.iter().filter(|s| s.timeout_secs.is_none()) {
            let before = k_sets.get(&*s.name).map_or(&empty, |o| &o.elements);
            out.extend(
                before
                    .difference(&s.elements)
                    .map(|ip| Change::DeleteSetElement {
                        set: s.name.clone(),
                        key: s.key,
                        addr: *ip,
                    }),
            );
            out.extend(
                s.elements
                    .difference(before)
                    .map(|ip| Change::AddSetElement {
                        set: s.name.clone(),
                        key: s.key,
                        addr: *ip,
                    }),
            );
        }
        let wanted: HashSet<&str> = self.chains.iter().map(|c| c.name.as_str()).collect();
        let gone: Vec<&str> = k
            .chains
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| !wanted.contains(n))
            .collect();
        out.extend(gone.iter().map(|c| Change::FlushChain(c.to_string())));
        out.extend(gone.iter().map(|c| Change::DeleteChain(c.to_string())));
        let wanted: HashSet<&str> = self
            .sets
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.maps.iter().map(|m| m.name.as_str()))
            .collect();
        out.extend(
            k.sets
                .iter()
                .map(|s| s.name.as_str())
                .chain(k.maps.iter().map(|m| m.name.as_str()))
                .filter(|n| !wanted.contains(n))
                .map(|n| Change::DeleteSet(n.to_string())),
        );
        Update {
            table: self.table.clone(),
            changes: out,
        }
    }

    /// Whether every object both sides have is defined alike (its contents aside).
    fn definitions_match<R>(&self, k: &Loaded<R>) -> bool {
        let k_chains: HashMap<&str, &LoadedChain<R>> =
            k.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let k_sets: HashMap<&str, &Set> = k.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let k_maps: HashMap<&str, &Map> = k.maps.iter().map(|m| (m.name.as_str(), m)).collect();
        let chains = self.chains.iter().all(|c| {
            k_chains
                .get(&*c.name)
                .is_none_or(|kc| loaded_base(c) == Some(kc.base.clone()))
        });
        let sets = self.sets.iter().all(|s| {
            k_sets.get(&*s.name).is_none_or(|o| {
                (o.key, o.timeout_secs, &o.comment) == (s.key, s.timeout_secs, &s.comment)
            }) && !k_maps.contains_key(&*s.name)
        });
        let maps = self.maps.iter().all(|m| {
            k_maps
                .get(&*m.name)
                .is_none_or(|o| (o.key, &o.comment) == (m.key, &m.comment))
                && !k_sets.contains_key(&*m.name)
        });
        chains && sets && maps
    }

    /// The whole table as one update; `replace` removes an existing table first.
    fn whole(&self, replace: bool) -> Update {
        let mut out = Vec::new();
        if replace {
            out.push(Change::DeleteTable);
        }
        out.push(Change::AddTable(self.comment.clone()));
        out.extend(
            self.sets
                .iter()
                .map(|s| Change::AddSet(without_elements(s))),
        );
        out.extend(self.maps.iter().map(|m| {
            Change::AddMap(Map {
                elements: BTreeMap::new(),
                ..m.clone()
            })
        }));
        out.extend(self.chains.iter().map(add_chain));
        for c in &self.chains {
            out.extend(add_rules(c));
        }
        for s in &self.sets {
            out.extend(s.elements.iter().map(|ip| Change::AddSetElement {
                set: s.name.clone(),
                key: s.key,
                addr: *ip,
            }));
        }
        for m in &self.maps {
            out.extend(add_map_elements(m, |_| None));
        }
        Update {
            table: self.table.clone(),
            changes: out,
        }
    }
}

fn without_elements(s: &Set) -> Set {
    Set {
        elements: BTreeSet::new(),
        ..s.clone()
    }
}

fn add_chain(c: &Chain) -> Change {
    match &c.base {
        Some(base) => Change::AddBaseChain {
            name: c.name.clone(),
            base: base.clone(),
        },
        None => Change::AddChain(c.name.clone()),
    }
}

fn add_rules(c: &Chain) -> impl Iterator<Item = Change> + '_ {
    c.rules.iter().map(|r| Change::AddRule {
        chain: c.name.clone(),
        rule: r.clone(),
    })
}

/// Keys of `before` whose entry `after` lacks or has otherwise.
fn differing<'a>(
    before: &'a BTreeMap<MapKey, MapEntry>,
    after: &'a BTreeMap<MapKey, MapEntry>,
) -> impl Iterator<Item = &'a MapKey> + 'a {
    before
        .iter()
        .filter(move |(k, e)| after.get(*k) != Some(*e))
        .map(|(k, _)| k)
}

/// Elements of `m` whose entry differs from what `before` gives for their key.
fn add_map_elements<'a>(
    m: &'a Map,
    before: impl Fn(&MapKey) -> Option<&'a MapEntry> + 'a,
) -> impl Iterator<Item = Change> + 'a {
    m.elements
        .iter()
        .filter(move |(k, e)| before(k) != Some(*e))
        .map(|(k, e)| Change::AddMapElement {
            map: m.name.clone(),
            key: *k,
            entry: e.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, LookupKey, MapVerdict, Match};
    use std::net::Ipv4Addr;

    const NAT: BaseChain = BaseChain {
        kind: "nat",
        hook: Hook::Prerouting,
        priority: "dstnat",
    };

    /// A small table: a base chain dispatching through a map, a service chain with
    /// affinity, a plain set and a dynamic one.
    fn desired() -> Ruleset {
        let mut rs = Ruleset::empty("t", Some("test"));
        rs.add_base_chain("pre", NAT);
        rs.add_rule(
            "pre",
            Rule::new(
                vec![Match::DaddrInSet("ips".into())],
                Action::Vmap {
                    key: LookupKey::DaddrProtoPort,
                    map: "svc".into(),
                },
            ),
        );
        rs.add_rule(
            "web",
            Rule::new(
                vec![Match::SaddrInSet("aff".into())],
                Action::Goto("ep".into()),
            ),
        );
        rs.add_rule(
            "web",
            Rule::always(Action::NumgenGoto(vec!["ep".into(), "ep2".into()])),
        );
        rs.add_rule("ep", Rule::always(Action::UpdateSaddr("aff".into())));
        rs.add_rule("ep2", Rule::always(Action::Accept));
        rs.add_set(Set {
            name: "ips".into(),
            key: crate::SetKey::Addr,
            comment: None,
            timeout_secs: None,
            elements: [Ipv4Addr::new(10, 96, 0, 1)].into(),
        });
        rs.add_set(Set {
            name: "aff".into(),
            key: crate::SetKey::Addr,
            comment: None,
            timeout_secs: Some(600),
            elements: BTreeSet::new(),
        });
        rs.add_map(Map {
            name: "svc".into(),
            key: LookupKey::DaddrProtoPort,
            comment: Some("dispatch".into()),
            elements: [(
                MapKey::Addr(Ipv4Addr::new(10, 96, 0, 1), crate::Proto::Tcp, 80),
                MapEntry {
                    verdict: MapVerdict::Goto("web".into()),
                    comment: None,
                },
            )]
            .into(),
        });
        rs
    }

    fn text(u: &Update) -> Vec<String> {
        u.to_nft().lines().map(String::from).collect()
    }

    fn kernel() -> Loaded<String> {
        desired().as_loaded(Rule::loaded_lines)
    }

    #[test]
    fn no_table_loads_everything_without_deleting() {
        let u = desired().repair(None::<&Loaded<String>>, Rule::loaded_lines);
        let lines = text(&u);
        assert_eq!(lines[0], "add table ip t { comment \"test\" ; }");
        assert!(!u.changes.contains(&Change::DeleteTable));
        assert!(lines
            .contains(&"add chain ip t pre { type nat hook prerouting priority dstnat ; }".into()));
        assert!(lines.contains(&"add rule ip t web numgen random mod 2 == 0 goto ep".into()));
        assert!(lines.contains(&"add element ip t ips { 10.96.0.1 }".into()));
        assert!(lines.contains(&"add element ip t svc { 10.96.0.1 . tcp . 80 : goto web }".into()));
    }

    #[test]
    fn a_table_that_matches_needs_nothing() {
        assert_eq!(
            desired()
                .repair(Some(&kernel()), Rule::loaded_lines)
                .changes,
            []
        );
    }

    #[test]
    fn dynamic_set_elements_are_left_alone() {
        let mut k = kernel();
        let aff = k.sets.iter_mut().find(|s| s.name == "aff").unwrap();
        aff.elements.insert(Ipv4Addr::new(10, 244, 1, 9));
        assert_eq!(desired().repair(Some(&k), Rule::loaded_lines).changes, []);
    }

    #[test]
    fn a_rule_deleted_by_hand_refills_only_its_chain() {
        let mut k = kernel();
        k.chains
            .iter_mut()
            .find(|c| c.name == "web")
            .unwrap()
            .rules
            .remove(1);
        let u = desired().repair(Some(&k), Rule::loaded_lines);
        assert_eq!(
            text(&u),
            [
                "flush chain ip t web",
                "add rule ip t web ip saddr @aff goto ep",
                "add rule ip t web numgen random mod 2 == 0 goto ep",
                "add rule ip t web goto ep2",
            ]
        );
    }

    #[test]
    fn missing_and_stale_objects_are_added_and_removed() {
        let mut k = kernel();
        k.chains.retain(|c| c.name != "ep2");
        k.chains.push(LoadedChain {
            name: "old".into(),
            base: None,
            rules: vec!["accept".into()],
        });
        let svc = k.maps.iter_mut().find(|m| m.name == "svc").unwrap();
        svc.elements.insert(
            MapKey::Addr(Ipv4Addr::new(10, 96, 0, 2), crate::Proto::Udp, 53),
            MapEntry {
                verdict: MapVerdict::Drop,
                comment: None,
            },
        );
        k.sets.retain(|s| s.name != "ips");
        let u = desired().repair(Some(&k), Rule::loaded_lines);
        assert_eq!(
            text(&u),
            [
                "add set ip t ips { type ipv4_addr ; }",
                "add chain ip t ep2",
                "add rule ip t ep2 accept",
                "delete element ip t svc { 10.96.0.2 . udp . 53 }",
                "add element ip t ips { 10.96.0.1 }",
                "flush chain ip t old",
                "delete chain ip t old",
            ]
        );
    }

    #[test]
    fn a_changed_definition_replaces_the_table() {
        let mut k = kernel();
        k.chains[0].base.as_mut().unwrap().priority = 0;
        let u = desired().repair(Some(&k), Rule::loaded_lines);
        assert_eq!(u.changes[0], Change::DeleteTable);
        assert_eq!(
            u.changes[1..],
            desired()
                .repair(None::<&Loaded<String>>, Rule::loaded_lines)
                .changes
        );

        let mut k = kernel();
        k.sets
            .iter_mut()
            .find(|s| s.name == "aff")
            .unwrap()
            .timeout_secs = Some(60);
        let u = desired().repair(Some(&k), Rule::loaded_lines);
        assert_eq!(u.changes[0], Change::DeleteTable);
    }
}
