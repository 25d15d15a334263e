//! Node podCIDR allocation: the cluster CIDR split into equal blocks, handed out lowest first.

use std::collections::{BTreeMap, HashMap};

use crate::{Error, Ipv4Cidr};

/// Which node holds which block of the cluster CIDR.
///
/// The controller rebuilds this from the Nodes' `spec.podCIDR` at start ([`NodeCidrs::occupy`]),
/// so assignments survive restarts, then calls [`NodeCidrs::allocate`] for nodes without one.
#[derive(Debug, Clone)]
pub struct NodeCidrs {
    cluster: Ipv4Cidr,
    mask: u8,
    /// Block index → node name. Sorted, so the lowest gap is found by walking the keys.
    by_index: BTreeMap<u64, String>,
    by_node: HashMap<String, u64>,
}

impl NodeCidrs {
    /// An empty allocator of `/mask` blocks from `cluster`.
    pub fn new(cluster: Ipv4Cidr, mask: u8) -> Result<NodeCidrs, Error> {
        // A /31 or /32 block leaves a node no pod addresses at all.
        if mask < cluster.prefix() || mask > 30 {
            return Err(Error::BadMask { cluster, mask });
        }
        Ok(NodeCidrs {
            cluster,
            mask,
            by_index: BTreeMap::new(),
            by_node: HashMap::new(),
        })
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> Ipv4Cidr {
        self.cluster
    }

    /// The node block prefix length.
    pub fn mask(&self) -> u8 {
        self.mask
    }

    /// How many blocks the cluster CIDR holds.
    pub fn capacity(&self) -> u64 {
        self.cluster.subnet_count(self.mask)
    }

    /// How many blocks are assigned.
    pub fn used(&self) -> usize {
        self.by_index.len()
    }

    /// Records that `node` already holds `cidr` (read back from its spec). Idempotent.
    pub fn occupy(&mut self, node: &str, cidr: Ipv4Cidr) -> Result<(), Error> {
        let index = self.index_of(cidr)?;
        match self.by_index.get(&index) {
            Some(owner) if owner == node => return Ok(()),
            Some(owner) => {
                return Err(Error::AlreadyAssigned {
                    cidr,
                    owner: owner.clone(),
                })
            }
            None => {}
        }
        // A node holds one block: a new claim replaces an old one.
        self.release(node);
        self.by_index.insert(index, node.to_string());
        self.by_node.insert(node.to_string(), index);
        Ok(())
    }

    /// The block of `node`: the one it holds, else the lowest free one. `None` when exhausted.
    pub fn allocate(&mut self, node: &str) -> Option<Ipv4Cidr> {
        if let Some(cidr) = self.get(node) {
            return Some(cidr);
        }
        let index = self.lowest_free()?;
        self.by_index.insert(index, node.to_string());
        self.by_node.insert(node.to_string(), index);
        self.cluster.subnet(self.mask, index)
    }

    /// Every (node, block) assignment, lowest block first.
    pub fn assigned(&self) -> impl Iterator<Item = (&str, Ipv4Cidr)> + '_ {
        self.by_index
            .iter()
            .filter_map(|(&i, n)| Some((n.as_str(), self.cluster.subnet(self.mask, i)?)))
    }

    /// The block `node` holds, if any.
    pub fn get(&self, node: &str) -> Option<Ipv4Cidr> {
        self.by_node
            .get(node)
            .and_then(|&i| self.cluster.subnet(self.mask, i))
    }

    /// Which node holds `cidr`, if any.
    pub fn owner(&self, cidr: Ipv4Cidr) -> Option<&str> {
        let index = self.index_of(cidr).ok()?;
        self.by_index.get(&index).map(String::as_str)
    }

    /// Frees the block of `node` (it was deleted); returns it.
    pub fn release(&mut self, node: &str) -> Option<Ipv4Cidr> {
        let index = self.by_node.remove(node)?;
        self.by_index.remove(&index);
        self.cluster.subnet(self.mask, index)
    }

    fn index_of(&self, cidr: Ipv4Cidr) -> Result<u64, Error> {
        let not_in = || Error::NotInCluster {
            cidr,
            cluster: self.cluster,
            mask: self.mask,
        };
        if cidr.prefix() != self.mask {
            return Err(not_in());
        }
        self.cluster.subnet_index(&cidr).ok_or_else(not_in)
    }

    fn lowest_free(&self) -> Option<u64> {
        let mut want = 0u64;
        for &used in self.by_index.keys() {
            if used != want {
                break;
            }
            want += 1;
        }
        (want < self.capacity()).then_some(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn masks() {
        let cases = [
            ("10.244.0.0/16", 24, true),
            ("10.244.0.0/16", 16, true),
            ("10.244.0.0/16", 15, false),
            ("10.0.0.0/8", 31, false),
            ("10.0.0.0/8", 30, true),
        ];
        for (cluster, mask, ok) in cases {
            assert_eq!(
                NodeCidrs::new(c(cluster), mask).is_ok(),
                ok,
                "{cluster} /{mask}"
            );
        }
    }

    #[test]
    fn lowest_free_first_and_stable() {
        let mut a = NodeCidrs::new(c("10.244.0.0/16"), 24).unwrap();
        assert_eq!(a.capacity(), 256);
        assert_eq!(a.allocate("n1"), Some(c("10.244.0.0/24")));
        assert_eq!(a.allocate("n2"), Some(c("10.244.1.0/24")));
        assert_eq!(
            a.allocate("n1"),
            Some(c("10.244.0.0/24")),
            "same node, same block"
        );
        assert_eq!(a.release("n1"), Some(c("10.244.0.0/24")));
        assert_eq!(
            a.allocate("n3"),
            Some(c("10.244.0.0/24")),
            "the freed gap is reused first"
        );
        assert_eq!(a.owner(c("10.244.1.0/24")), Some("n2"));
        assert_eq!(a.used(), 2);
        let all: Vec<(&str, Ipv4Cidr)> = a.assigned().collect();
        assert_eq!(
            all,
            vec![("n3", c("10.244.0.0/24")), ("n2", c("10.244.1.0/24"))]
        );
    }

    #[test]
    fn occupy_reads_back_existing_assignments() {
        // A restart: blocks 0 and 2 are on nodes already, so the next is block 1, then 3.
        let mut a = NodeCidrs::new(c("10.244.0.0/16"), 24).unwrap();
        a.occupy("a", c("10.244.0.0/24")).unwrap();
        a.occupy("c", c("10.244.2.0/24")).unwrap();
        a.occupy("c", c("10.244.2.0/24")).unwrap();
        assert_eq!(a.allocate("b"), Some(c("10.244.1.0/24")));
        assert_eq!(a.allocate("d"), Some(c("10.244.3.0/24")));
        let cases = [
            (
                "x",
                "10.244.2.0/24",
                Err(Error::AlreadyAssigned {
                    cidr: c("10.244.2.0/24"),
                    owner: "c".into(),
                }),
            ),
            (
                "x",
                "10.245.0.0/24",
                Err(Error::NotInCluster {
                    cidr: c("10.245.0.0/24"),
                    cluster: c("10.244.0.0/16"),
                    mask: 24,
                }),
            ),
            (
                "x",
                "10.244.8.0/25",
                Err(Error::NotInCluster {
                    cidr: c("10.244.8.0/25"),
                    cluster: c("10.244.0.0/16"),
                    mask: 24,
                }),
            ),
            ("x", "10.244.9.0/24", Ok(())),
        ];
        for (node, cidr, want) in cases {
            assert_eq!(a.occupy(node, c(cidr)), want, "{node} {cidr}");
        }
    }

    #[test]
    fn exhaustion() {
        let mut a = NodeCidrs::new(c("10.0.0.0/23"), 24).unwrap();
        assert_eq!(a.allocate("a"), Some(c("10.0.0.0/24")));
        assert_eq!(a.allocate("b"), Some(c("10.0.1.0/24")));
        assert_eq!(a.allocate("c"), None);
        assert_eq!(a.get("c"), None);
        a.release("a");
        assert_eq!(a.allocate("c"), Some(c("10.0.0.0/24")));
    }
}
