//! IP -> owners, for PTR answers. IPv4 keys are kept apart as 4 bytes: with an
//! `IpAddr` key (17 bytes, padded to 24) a bucket is 56 bytes, with an
//! `Ipv4Addr` one 40, and the table has a bucket and a half per Service.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::compact::{Key, Owners};

#[derive(Debug, Default)]
pub(crate) struct IpIndex {
    v4: HashMap<Ipv4Addr, Owners>,
    v6: HashMap<Ipv6Addr, Owners>,
}

impl IpIndex {
    pub(crate) fn get(&self, ip: &IpAddr) -> Option<&Owners> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(v4),
            IpAddr::V6(v6) => self.v6.get(v6),
        }
    }

    pub(crate) fn add(&mut self, ip: IpAddr, key: Key) {
        match ip {
            IpAddr::V4(v4) => add(&mut self.v4, v4, key),
            IpAddr::V6(v6) => add(&mut self.v6, v6, key),
        }
    }

    /// Drops one `(ns, name)` occurrence for `ip`, and the entry when it empties.
    pub(crate) fn remove(&mut self, ip: &IpAddr, ns: &str, name: &str) {
        match ip {
            IpAddr::V4(v4) => remove(&mut self.v4, v4, ns, name),
            IpAddr::V6(v6) => remove(&mut self.v6, v6, ns, name),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn add<K: Hash + Eq>(map: &mut HashMap<K, Owners>, ip: K, key: Key) {
    match map.entry(ip) {
        Entry::Occupied(mut e) => e.get_mut().push(key),
        Entry::Vacant(e) => {
            e.insert(Owners::One(key));
        }
    }
}

fn remove<K: Hash + Eq>(map: &mut HashMap<K, Owners>, ip: &K, ns: &str, name: &str) {
    if map.get_mut(ip).is_some_and(|o| o.remove(ns, name)) {
        map.remove(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_index_and_unindex() {
        let mut idx = IpIndex::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap());
        idx.add(a, ("ns".into(), "x".into()));
        idx.add(a, ("ns".into(), "y".into()));
        idx.add(b, ("ns".into(), "x".into()));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get(&a).map(|o| o.as_slice().len()), Some(2));
        idx.remove(&a, "ns", "x");
        assert_eq!(idx.get(&a).map(|o| o.as_slice().len()), Some(1));
        idx.remove(&a, "ns", "y");
        idx.remove(&b, "ns", "x");
        assert!(idx.is_empty() && idx.get(&a).is_none() && idx.get(&b).is_none());
    }
}
