//! Small collections for the per-Service records. Almost every Service has one
//! cluster IP and every IP one owner; keeping that one inline saves an
//! allocation (32–48 bytes with its allocator overhead) per Service, which
//! at 10k Services is most of the gap to the memory target.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

/// IP addresses, the single one stored inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IpList {
    One(IpAddr),
    /// None, or two and more.
    Many(Box<[IpAddr]>),
}

impl IpList {
    pub(crate) fn as_slice(&self) -> &[IpAddr] {
        match self {
            IpList::One(ip) => std::slice::from_ref(ip),
            IpList::Many(ips) => ips,
        }
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, IpAddr> {
        self.as_slice().iter()
    }
}

impl From<Vec<IpAddr>> for IpList {
    fn from(ips: Vec<IpAddr>) -> Self {
        match ips[..] {
            [one] => IpList::One(one),
            _ => IpList::Many(ips.into()),
        }
    }
}

/// `(namespace, name)`; shares allocations with the namespace maps.
pub(crate) type Key = (Arc<str>, Arc<str>);

/// Who holds an IP: normally one Service or slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owners {
    One(Key),
    Many(Vec<Key>),
}

impl Owners {
    pub(crate) fn as_slice(&self) -> &[Key] {
        match self {
            Owners::One(k) => std::slice::from_ref(k),
            Owners::Many(ks) => ks,
        }
    }

    pub(crate) fn push(&mut self, key: Key) {
        match self {
            Owners::One(first) => *self = Owners::Many(vec![first.clone(), key]),
            Owners::Many(ks) => ks.push(key),
        }
    }

    /// Drops one `(ns, name)`; true when none is left.
    pub(crate) fn remove(&mut self, ns: &str, name: &str) -> bool {
        let is = |(o_ns, o_name): &Key| **o_ns == *ns && **o_name == *name;
        match self {
            Owners::One(k) => is(k),
            Owners::Many(ks) => {
                if let Some(pos) = ks.iter().position(is) {
                    ks.swap_remove(pos);
                }
                if ks.len() == 1 {
                    if let Some(last) = ks.pop() {
                        *self = Owners::One(last);
                    }
                }
                matches!(self, Owners::Many(ks) if ks.is_empty())
            }
        }
    }
}

/// One shared copy of each port name ("http", "dns", ""), instead of a small
/// allocation per port of every Service.
#[derive(Debug, Default)]
pub(crate) struct Names(HashSet<Arc<str>>);

impl Names {
    pub(crate) fn intern(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        self.0.insert(name.clone());
        name.clone()
    }

    /// Forgets the names no record holds any more; `names` are the ones a
    /// record just dropped held.
    pub(crate) fn release(&mut self, mut names: Vec<Arc<str>>) {
        names.sort();
        names.dedup();
        for n in names {
            // The set's copy and `n` itself.
            if Arc::strong_count(&n) == 2 {
                self.0.remove(&n);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    fn key(ns: &str, name: &str) -> Key {
        (ns.into(), name.into())
    }

    #[test]
    fn the_common_case_is_inline_and_small() {
        assert!(size_of::<IpList>() <= 24, "{}", size_of::<IpList>());
        assert!(size_of::<Owners>() <= 32, "{}", size_of::<Owners>());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(IpList::from(vec![ip]), IpList::One(ip));
        assert_eq!(IpList::from(vec![]).as_slice(), &[] as &[IpAddr]);
        let two = IpList::from(vec![ip, "fd00::1".parse().unwrap()]);
        assert_eq!(two.iter().count(), 2);
    }

    #[test]
    fn names_are_shared_and_forgotten_with_their_last_holder() {
        let mut names = Names::default();
        let a = names.intern(&"http".into());
        let b = names.intern(&"http".into());
        assert!(Arc::ptr_eq(&a, &b));
        let c = names.intern(&"dns".into());
        names.release(vec![b.clone(), b]);
        assert_eq!(names.len(), 2, "`a` still holds http");
        names.release(vec![a]);
        assert_eq!(names.len(), 1);
        names.release(vec![c.clone(), c]);
        assert_eq!(names.len(), 0);
    }

    #[test]
    fn owners_grow_and_shrink_back() {
        let mut o = Owners::One(key("a", "x"));
        o.push(key("b", "y"));
        o.push(key("c", "z"));
        assert_eq!(o.as_slice().len(), 3);
        assert!(!o.remove("b", "y"));
        assert!(!o.remove("missing", "y"));
        assert!(!o.remove("a", "x"));
        assert_eq!(o, Owners::One(key("c", "z")), "back to inline");
        assert!(!o.remove("a", "x"), "not an owner: kept");
        assert!(o.remove("c", "z"), "last owner gone");
    }
}
