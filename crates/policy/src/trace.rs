//! A small interpreter of a policy `Ruleset`: follows a new connection's first packet through
//! the node's hooks and says whether it passes, and which policy rule allowed each direction.

use std::net::Ipv4Addr;

use crate::policy::Direction;
use crate::ruleset::{Action, AddrField, Chain, Hook, Match, Ruleset};
pub use kinet_proxy_rules::{Origin, Packet};

/// What happened to a new connection's first packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub accepted: bool,
    /// The policy rule (`ns/name egress[0]`) that let the source's egress through, if its
    /// chain was entered.
    pub egress: Option<String>,
    pub ingress: Option<String>,
    /// The drop counters the packet incremented.
    pub counters: Vec<String>,
}

enum Flow {
    Continue,
    Accept,
    Drop,
}

/// Runs `pkt` (a new connection) through `rs`.
pub fn trace(rs: &Ruleset, pkt: &Packet) -> Trace {
    let hook = match pkt.origin {
        Origin::Host => None,
        Origin::Network if rs.local_addrs.contains(&pkt.dst) => Some(Hook::Input),
        Origin::Network => Some(Hook::Forward),
    };
    let mut t = Trace::default();
    let base = rs.chains.iter().find(|c| hook.is_some() && c.hook == hook);
    t.accepted = match base.map(|c| run(rs, c, pkt, &mut t)) {
        Some(Flow::Drop) => false,
        Some(Flow::Accept | Flow::Continue) | None => true,
    };
    t
}

fn addr(pkt: &Packet, f: AddrField) -> Ipv4Addr {
    match f {
        AddrField::Saddr => pkt.src,
        AddrField::Daddr => pkt.dst,
    }
}

fn in_set(rs: &Ruleset, set: &str, ip: Ipv4Addr, pkt: &Packet) -> bool {
    rs.set(set)
        .is_some_and(|s| s.contains(ip, pkt.proto, pkt.dport))
}

fn run(rs: &Ruleset, chain: &Chain, pkt: &Packet, t: &mut Trace) -> Flow {
    for r in &chain.rules {
        let hit = r.matches.iter().all(|m| match m {
            // The first packet of a connection is never established.
            Match::CtEstablishedRelated => false,
            Match::AddrInSet(f, s) => in_set(rs, s, addr(pkt, *f), pkt),
            Match::ProtoPortInSet(s) | Match::DaddrProtoPortInSet(s) => in_set(rs, s, pkt.dst, pkt),
        });
        if !hit {
            continue;
        }
        match &r.action {
            Action::Accept => return Flow::Accept,
            Action::Drop => return Flow::Drop,
            Action::Return => {
                let slot = match chain.direction {
                    Some(Direction::Egress) => &mut t.egress,
                    _ => &mut t.ingress,
                };
                *slot = r.comment.clone();
                return Flow::Continue;
            }
            Action::Count(c) => t.counters.push(c.clone()),
            Action::Vmap(f, m) => {
                let target = rs.maps.get(m).and_then(|m| m.get(&addr(pkt, *f)));
                if let Some(c) = target.and_then(|name| rs.chain(name)) {
                    match run(rs, c, pkt, t) {
                        Flow::Continue => {}
                        end => return end,
                    }
                }
            }
        }
    }
    Flow::Continue
}
