//! IPv4 prefixes and `ipBlock` (a CIDR minus its `except` prefixes) as address ranges.

use std::net::{IpAddr, Ipv4Addr};

use kinet_ipam::Ipv4Cidr;

use crate::PolicyError;

/// Parses an `ipBlock` prefix. An IPv6 prefix is valid but can match nothing in this IPv4
/// cluster, so it gives `None`.
pub(crate) fn parse_cidr(s: &str) -> Result<Option<Ipv4Cidr>, PolicyError> {
    let bad = || PolicyError::Cidr(s.to_string());
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    if let Ok(IpAddr::V6(_)) = addr.parse::<IpAddr>() {
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        return if prefix <= 128 { Ok(None) } else { Err(bad()) };
    }
    s.parse::<Ipv4Cidr>().map(Some).map_err(|_| bad())
}

/// The first and last address, inclusive.
fn range(c: &Ipv4Cidr) -> (u32, u32) {
    (u32::from(c.network()), u32::from(c.broadcast()))
}

/// An `ipBlock`: addresses in `cidr` and in none of `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpBlock {
    /// `None` for an IPv6 block.
    pub(crate) cidr: Option<Ipv4Cidr>,
    pub(crate) except: Vec<Ipv4Cidr>,
}

impl IpBlock {
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        self.cidr.is_some_and(|c| c.contains(ip)) && !self.except.iter().any(|e| e.contains(ip))
    }

    /// The block as sorted, disjoint, inclusive ranges (the elements of an nft interval set).
    pub(crate) fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self.cidr.iter().map(range).collect();
        for e in &self.except {
            let (lo, hi) = range(e);
            out = out
                .into_iter()
                .flat_map(|(a, b)| {
                    if hi < a || lo > b {
                        return vec![(a, b)];
                    }
                    let mut keep = Vec::new();
                    if lo > a {
                        keep.push((a, lo - 1));
                    }
                    if hi < b {
                        keep.push((hi + 1, b));
                    }
                    keep
                })
                .collect();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str, except: &[&str]) -> IpBlock {
        IpBlock {
            cidr: parse_cidr(cidr).unwrap(),
            except: except
                .iter()
                .map(|e| parse_cidr(e).unwrap().unwrap())
                .collect(),
        }
    }

    #[test]
    fn parse_masks_host_bits_and_rejects_garbage() {
        let c = parse_cidr("10.244.1.7/16").unwrap().unwrap();
        assert_eq!(range(&c), (0x0af4_0000, 0x0af4_ffff));
        assert_eq!(
            range(&parse_cidr("0.0.0.0/0").unwrap().unwrap()),
            (0, u32::MAX)
        );
        assert_eq!(parse_cidr("fd00::/64").unwrap(), None);
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0/8", "fd00::/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn except_carves_holes_out_of_the_ranges() {
        let b = block("10.0.0.0/8", &["10.1.0.0/16", "10.0.0.5/32"]);
        assert!(b.contains(Ipv4Addr::new(10, 0, 0, 4)));
        assert!(!b.contains(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(!b.contains(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!b.contains(Ipv4Addr::new(11, 0, 0, 1)));
        let ip = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            b.ranges(),
            vec![
                (ip("10.0.0.0"), ip("10.0.0.4")),
                (ip("10.0.0.6"), ip("10.0.255.255")),
                (ip("10.2.0.0"), ip("10.255.255.255")),
            ]
        );
        // An except covering the whole block leaves nothing.
        assert!(block("10.0.0.5/32", &["10.0.0.0/24"]).ranges().is_empty());
        // An IPv6 block matches no IPv4 address.
        assert!(block("fd00::/8", &[]).ranges().is_empty());
    }
}
