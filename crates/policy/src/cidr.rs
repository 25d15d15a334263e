//! IPv4 prefixes and `ipBlock` (a CIDR minus its `except` prefixes) as address ranges.

use std::net::{IpAddr, Ipv4Addr};

use crate::PolicyError;

/// An IPv4 prefix, stored as its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cidr4 {
    net: u32,
    prefix: u8,
}

impl Cidr4 {
    /// Parses `a.b.c.d/p`. An IPv6 prefix is valid but can match nothing in this IPv4
    /// cluster, so it gives `None`.
    pub(crate) fn parse(s: &str) -> Result<Option<Cidr4>, PolicyError> {
        let bad = || PolicyError::Cidr(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        match addr.parse::<IpAddr>().map_err(|_| bad())? {
            IpAddr::V6(_) if prefix <= 128 => Ok(None),
            IpAddr::V4(a) if prefix <= 32 => {
                let net = u32::from(a) & mask(prefix);
                Ok(Some(Cidr4 { net, prefix }))
            }
            _ => Err(bad()),
        }
    }

    /// The first and last address, inclusive.
    pub(crate) fn range(self) -> (u32, u32) {
        (self.net, self.net | !mask(self.prefix))
    }

    pub(crate) fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.net
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// An `ipBlock`: addresses in `cidr` and in none of `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpBlock {
    /// `None` for an IPv6 block.
    pub(crate) cidr: Option<Cidr4>,
    pub(crate) except: Vec<Cidr4>,
}

impl IpBlock {
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        self.cidr.is_some_and(|c| c.contains(ip)) && !self.except.iter().any(|e| e.contains(ip))
    }

    /// The block as sorted, disjoint, inclusive ranges (the elements of an nft interval set).
    pub(crate) fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self.cidr.iter().map(|c| c.range()).collect();
        for e in &self.except {
            let (lo, hi) = e.range();
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
            cidr: Cidr4::parse(cidr).unwrap(),
            except: except
                .iter()
                .map(|e| Cidr4::parse(e).unwrap().unwrap())
                .collect(),
        }
    }

    #[test]
    fn parse_masks_host_bits_and_rejects_garbage() {
        let c = Cidr4::parse("10.244.1.7/16").unwrap().unwrap();
        assert_eq!(c.range(), (0x0af4_0000, 0x0af4_ffff));
        assert_eq!(
            Cidr4::parse("0.0.0.0/0").unwrap().unwrap().range(),
            (0, u32::MAX)
        );
        assert_eq!(Cidr4::parse("fd00::/64").unwrap(), None);
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0/8"] {
            assert!(Cidr4::parse(bad).is_err(), "{bad}");
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
