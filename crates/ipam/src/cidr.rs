//! An IPv4 prefix held in canonical form (host bits zero).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// An IPv4 network such as `10.244.0.0/16`. The address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Builds a prefix, clearing any host bits of `addr` (as `net.ParseCIDR` returns the network).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, Error> {
        if prefix > 32 {
            return Err(Error::InvalidCidr(format!("{addr}/{prefix}")));
        }
        Ok(Ipv4Cidr {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network mask, `255.255.0.0` for a `/16`.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The last address of the range.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network | !mask(self.prefix))
    }

    /// How many addresses the range holds, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }

    /// Whether `other` lies wholly inside this range.
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The address at `offset` from the network address, if it is inside the range.
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(self.network + offset as u32))
    }

    /// How far `ip` is from the network address, if it is inside the range.
    pub fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        self.contains(ip)
            .then(|| u64::from(u32::from(ip) - self.network))
    }

    /// How many `/new_prefix` blocks the range splits into (0 if `new_prefix` is shorter).
    pub fn subnet_count(&self, new_prefix: u8) -> u64 {
        if new_prefix < self.prefix || new_prefix > 32 {
            return 0;
        }
        1u64 << (new_prefix - self.prefix)
    }

    /// The `index`th `/new_prefix` block of the range, counting from the lowest.
    pub fn subnet(&self, new_prefix: u8, index: u64) -> Option<Ipv4Cidr> {
        if index >= self.subnet_count(new_prefix) {
            return None;
        }
        let step = 1u64 << (32 - new_prefix);
        Some(Ipv4Cidr {
            network: self.network + (index * step) as u32,
            prefix: new_prefix,
        })
    }

    /// Which `/other.prefix` block of this range `other` is, if it is exactly one.
    pub fn subnet_index(&self, other: &Ipv4Cidr) -> Option<u64> {
        if !self.contains_cidr(other) {
            return None;
        }
        Some(u64::from(other.network - self.network) >> (32 - other.prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ipv4Cidr, Error> {
        let bad = || Error::InvalidCidr(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        // Reject "+8", " 8" and the like, which u8::from_str would partly accept.
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Cidr::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_print() {
        let cases = [
            ("10.244.0.0/16", Some("10.244.0.0/16")),
            ("10.244.3.7/16", Some("10.244.0.0/16")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("192.168.1.1/32", Some("192.168.1.1/32")),
            ("10.0.0.0/33", None),
            ("10.0.0.0", None),
            ("10.0.0/8", None),
            ("10.0.0.0/", None),
            ("10.0.0.0/+8", None),
            ("10.0.0.0/008", None),
            ("fd00::/64", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Ipv4Cidr>().ok().map(|c| c.to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn arithmetic() {
        let n = c("10.244.0.0/16");
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 244, 255, 255));
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(c("0.0.0.0/0").netmask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(n.size(), 65536);
        assert!(n.contains(Ipv4Addr::new(10, 244, 9, 9)));
        assert!(!n.contains(Ipv4Addr::new(10, 245, 0, 0)));
        assert!(n.contains_cidr(&c("10.244.7.0/24")));
        assert!(!n.contains_cidr(&c("10.0.0.0/8")));
        assert_eq!(n.subnet_count(24), 256);
        assert_eq!(n.subnet_count(8), 0);
        assert_eq!(n.subnet(24, 0), Some(c("10.244.0.0/24")));
        assert_eq!(n.subnet(24, 255), Some(c("10.244.255.0/24")));
        assert_eq!(n.subnet(24, 256), None);
        assert_eq!(n.subnet_index(&c("10.244.5.0/24")), Some(5));
        assert_eq!(n.subnet_index(&c("10.245.5.0/24")), None);
        assert_eq!(n.nth(258), Some(Ipv4Addr::new(10, 244, 1, 2)));
        assert_eq!(n.offset_of(Ipv4Addr::new(10, 244, 1, 2)), Some(258));
        assert_eq!(c("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(c("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(c("1.2.3.4/32").nth(1), None);
    }

    #[test]
    fn serde_as_string() {
        let v = serde_json::to_string(&c("10.1.2.0/24")).unwrap();
        assert_eq!(v, "\"10.1.2.0/24\"");
        assert_eq!(
            serde_json::from_str::<Ipv4Cidr>(&v).unwrap(),
            c("10.1.2.0/24")
        );
        assert!(serde_json::from_str::<Ipv4Cidr>("\"nope\"").is_err());
    }
}
