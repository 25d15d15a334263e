//! Host-local style pod addresses inside one node's podCIDR.
//!
//! As the CNI host-local plugin does: the usable range skips the network address, the gateway
//! (`.1`, the bridge) and the broadcast address, and each allocation starts searching just after
//! the last one handed out, so a freed address is not reused at once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{Error, Ipv4Cidr};

/// Everything the allocator knows; the agent persists this (e.g. as JSON) between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIpState {
    /// The node's podCIDR.
    pub cidr: Ipv4Cidr,
    /// The address handed out most recently; the next search starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reserved: Option<Ipv4Addr>,
    /// Address → owner (for example a pod sandbox or container ID).
    #[serde(default)]
    pub allocations: BTreeMap<Ipv4Addr, String>,
}

/// A pod address allocator over one podCIDR.
#[derive(Debug, Clone)]
pub struct PodIps {
    state: PodIpState,
}

impl PodIps {
    /// A fresh allocator. Fails for a /31 or /32, which have no host addresses beside the gateway.
    pub fn new(cidr: Ipv4Cidr) -> Result<PodIps, Error> {
        PodIps::from_state(PodIpState {
            cidr,
            last_reserved: None,
            allocations: BTreeMap::new(),
        })
    }

    /// Resumes from persisted state.
    pub fn from_state(state: PodIpState) -> Result<PodIps, Error> {
        if state.cidr.prefix() > 30 {
            return Err(Error::TooSmall(state.cidr));
        }
        Ok(PodIps { state })
    }

    /// The state to persist.
    pub fn state(&self) -> &PodIpState {
        &self.state
    }

    /// The gateway address, `.1` of the range.
    pub fn gateway(&self) -> Ipv4Addr {
        self.state.cidr.nth(1).unwrap_or(self.state.cidr.network())
    }

    /// The address `owner` holds, if any.
    pub fn get(&self, owner: &str) -> Option<Ipv4Addr> {
        self.state
            .allocations
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }

    /// An address for `owner`: the one it already holds (so a retried ADD is idempotent), else
    /// the next free one after the last handed out, wrapping round.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, Error> {
        if let Some(ip) = self.get(owner) {
            return Ok(ip);
        }
        let cidr = self.state.cidr;
        // Usable offsets are 2 ..= size-2.
        let (first, last) = (2u64, cidr.size() - 2);
        let count = last - first + 1;
        let start = match self.state.last_reserved.and_then(|ip| cidr.offset_of(ip)) {
            Some(off) if (first..=last).contains(&off) => off - first + 1,
            _ => 0,
        };
        for step in 0..count {
            let off = first + (start + step) % count;
            let ip = cidr.nth(off).ok_or(Error::Exhausted(cidr))?;
            if let std::collections::btree_map::Entry::Vacant(slot) =
                self.state.allocations.entry(ip)
            {
                slot.insert(owner.to_string());
                self.state.last_reserved = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::Exhausted(cidr))
    }

    /// Frees every address `owner` holds; returns the first. Releasing twice is fine.
    pub fn release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let ips: Vec<Ipv4Addr> = self
            .state
            .allocations
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &ips {
            self.state.allocations.remove(ip);
        }
        ips.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn too_small() {
        for (cidr, ok) in [
            ("10.0.0.0/24", true),
            ("10.0.0.0/30", true),
            ("10.0.0.0/31", false),
            ("10.0.0.0/32", false),
        ] {
            assert_eq!(PodIps::new(cidr.parse().unwrap()).is_ok(), ok, "{cidr}");
        }
    }

    #[test]
    fn skips_network_gateway_broadcast_and_round_robins() {
        // A /29 has 8 addresses: .0 network, .1 gateway, .7 broadcast, .2-.6 usable.
        let mut p = PodIps::new("10.1.0.0/29".parse().unwrap()).unwrap();
        assert_eq!(p.gateway(), ip("10.1.0.1"));
        let steps: &[(&str, &str, Result<&str, ()>)] = &[
            ("alloc", "a", Ok("10.1.0.2")),
            ("alloc", "b", Ok("10.1.0.3")),
            ("alloc", "a", Ok("10.1.0.2")),
            ("release", "a", Ok("10.1.0.2")),
            // Round robin: .4 next, not the freed .2.
            ("alloc", "c", Ok("10.1.0.4")),
            ("alloc", "d", Ok("10.1.0.5")),
            ("alloc", "e", Ok("10.1.0.6")),
            // Wraps to the lowest free.
            ("alloc", "f", Ok("10.1.0.2")),
            ("alloc", "g", Err(())),
            ("release", "zzz", Err(())),
            ("release", "c", Ok("10.1.0.4")),
            ("alloc", "g", Ok("10.1.0.4")),
        ];
        for (i, (op, owner, want)) in steps.iter().enumerate() {
            let got = match *op {
                "alloc" => p.allocate(owner).map_err(|_| ()),
                _ => p.release(owner).ok_or(()),
            };
            assert_eq!(got, want.map(ip), "step {i}: {op} {owner}");
        }
        assert_eq!(p.get("g"), Some(ip("10.1.0.4")));
    }

    #[test]
    fn state_round_trips_and_resumes_after_last() {
        let mut p = PodIps::new("10.244.3.0/24".parse().unwrap()).unwrap();
        p.allocate("x").unwrap();
        p.allocate("y").unwrap();
        p.release("x");
        let json = serde_json::to_string(p.state()).unwrap();
        assert_eq!(
            json,
            r#"{"cidr":"10.244.3.0/24","lastReserved":"10.244.3.3","allocations":{"10.244.3.3":"y"}}"#
        );
        let state: PodIpState = serde_json::from_str(&json).unwrap();
        let mut q = PodIps::from_state(state).unwrap();
        assert_eq!(q.allocate("z"), Ok(ip("10.244.3.4")));
        // A last address outside the range (a changed podCIDR) restarts from the bottom.
        let mut r = PodIps::from_state(PodIpState {
            cidr: "10.244.3.0/24".parse().unwrap(),
            last_reserved: Some(ip("10.9.9.9")),
            allocations: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(r.allocate("a"), Ok(ip("10.244.3.2")));
    }

    #[test]
    fn wraps_from_top_of_range() {
        let mut p = PodIps::from_state(PodIpState {
            cidr: "10.0.0.0/24".parse().unwrap(),
            last_reserved: Some(ip("10.0.0.254")),
            allocations: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(p.allocate("a"), Ok(ip("10.0.0.2")));
    }
}
