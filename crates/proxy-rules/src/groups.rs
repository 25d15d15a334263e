//! Endpoint group ids. Every Service port's endpoints (and, under a Local traffic policy,
//! its node-local endpoints) are one group, and every group owns the keys
//! `[id * 65536, id * 65536 + 65535]` of an endpoints map its protocol and id pick: groups
//! `GROUPS_PER_MAP * k` to `GROUPS_PER_MAP * k + GROUPS_PER_MAP - 1` share one. A group keeps
//! its id while it exists, so the rule that names its offset never changes; an id given back
//! is reused, lowest first, so groups stay packed in few maps.
//!
//! Why shared maps of bounded size (kernel 6.18): the kernel finds a set by name by walking
//! the table's list of sets, so a map per group makes a whole load quadratic in the number of
//! groups; and it checks every element of a map against every rule that looks the map up,
//! when either is added, so one map for all groups is quadratic too (10,000 Services x 10
//! endpoints took minutes to load). 64 groups a map keep both walks short.

use std::collections::{BTreeSet, HashMap};

use crate::input::PortKey;
use crate::model::RANDOM_MODULUS;

/// One endpoint group: a Service port's endpoints, or only its node-local ones.
pub(crate) type Group = (PortKey, bool);

/// The highest id: `65535 * 65536 + 65535` is the last 32-bit key.
const MAX_ID: u32 = u16::MAX as u32;

/// How many endpoint groups (of one protocol) share an endpoints map.
pub const GROUPS_PER_MAP: u32 = 64;

/// Which id each endpoint group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIds {
    ids: HashMap<Group, u32>,
    /// Ids given back, reused lowest first.
    free: BTreeSet<u32>,
    /// The lowest id never given out (0 is never used).
    next: u32,
}

impl Default for GroupIds {
    fn default() -> GroupIds {
        GroupIds {
            ids: HashMap::new(),
            free: BTreeSet::new(),
            next: 1,
        }
    }
}

impl GroupIds {
    /// The first key of `group`'s range, giving it an id if it has none; `None` when all
    /// 65,535 ids are taken.
    pub(crate) fn offset(&mut self, group: &Group) -> Option<u32> {
        let id = match self.ids.get(group) {
            Some(id) => *id,
            None => {
                let id = match self.free.pop_first() {
                    Some(id) => id,
                    None if self.next <= MAX_ID => {
                        self.next += 1;
                        self.next - 1
                    }
                    None => return None,
                };
                self.ids.insert(group.clone(), id);
                id
            }
        };
        Some(id * RANDOM_MODULUS)
    }

    /// Gives `group`'s id back.
    pub(crate) fn release(&mut self, group: &Group) {
        if let Some(id) = self.ids.remove(group) {
            self.free.insert(id);
        }
    }
}

#[cfg(test)]
impl GroupIds {
    /// Ids with none left to give.
    pub(crate) fn exhausted() -> GroupIds {
        GroupIds {
            next: MAX_ID + 1,
            ..GroupIds::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;

    fn group(name: &str) -> Group {
        (("ns".into(), name.into(), "http".into(), Proto::Tcp), false)
    }

    #[test]
    fn ids_are_kept_then_reused_lowest_first() {
        let mut ids = GroupIds::default();
        assert_eq!(ids.offset(&group("a")), Some(65536));
        assert_eq!(ids.offset(&group("b")), Some(2 * 65536));
        assert_eq!(ids.offset(&group("c")), Some(3 * 65536));
        assert_eq!(ids.offset(&group("a")), Some(65536), "kept while it exists");
        ids.release(&group("b"));
        ids.release(&group("a"));
        assert_eq!(ids.offset(&group("d")), Some(65536));
        assert_eq!(ids.offset(&group("e")), Some(2 * 65536));
        assert_eq!(ids.offset(&group("f")), Some(4 * 65536));
        assert_eq!(ids.ids.len(), 4);
    }

    #[test]
    fn exhausted_ids_give_none() {
        assert_eq!(GroupIds::exhausted().offset(&group("a")), None);
    }

    #[test]
    fn the_last_id_ends_at_the_last_key_and_then_none_are_left() {
        let mut ids = GroupIds::default();
        for i in 0..MAX_ID {
            ids.offset(&group(&i.to_string())).unwrap();
        }
        let last = ids.offset(&group("0")).unwrap();
        assert_eq!(last, RANDOM_MODULUS);
        assert_eq!(
            ids.offset(&group(&(MAX_ID - 1).to_string())),
            Some(u32::MAX - (RANDOM_MODULUS - 1))
        );
        assert_eq!(ids.offset(&group("one too many")), None);
        ids.release(&group("7"));
        assert_eq!(ids.offset(&group("one too many")), Some(8 * RANDOM_MODULUS));
    }
}
