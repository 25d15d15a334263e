//! A small interpreter of a `Ruleset`: follows a packet's first (ct state
//! new) pass through the hooks in kernel order and reports every possible
//! outcome. `numgen random` is expanded into all its branches, unless the packet
//! carries the number drawn ([`Packet::drawn`]); dynamic affinity sets are treated as
//! empty (no remembered clients).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::model::{
    Action, Chain, LookupKey, MapKey, MapVerdict, Match, Proto, Rule, Ruleset, RANDOM_MODULUS,
};

/// Where a packet enters this node's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From an interface: a pod on this node, another node, or outside.
    /// Goes through prerouting, then input or forward.
    Network,
    /// From a process in the node's own network namespace: output hook.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: Proto,
    pub dport: u16,
    pub origin: Origin,
    /// The number `numgen random mod 65536` gives this packet; `None`: every branch.
    pub random: Option<u32>,
}

impl Packet {
    pub fn new(proto: Proto, src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Packet {
        Packet {
            src,
            dst,
            proto,
            dport,
            origin: Origin::Network,
            random: None,
        }
    }
    pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Packet {
        Packet::new(Proto::Tcp, src, dst, dport)
    }
    pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Packet {
        Packet::new(Proto::Udp, src, dst, dport)
    }
    /// The same packet with `numgen random mod 65536` drawing `n`: one branch is taken.
    pub fn drawn(mut self, n: u32) -> Packet {
        self.random = Some(n % RANDOM_MODULUS);
        self
    }
    /// The same packet, sent by the node itself.
    pub fn from_host(mut self) -> Packet {
        self.origin = Origin::Host;
        self
    }
}

/// One possible destination after DNAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnatTarget {
    pub to: SocketAddrV4,
    /// Whether the source is masqueraded on the way out.
    pub masquerade: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passes untouched (not service traffic).
    Accept,
    /// Rewritten to one of these endpoints (sorted, deduplicated).
    Dnat(Vec<DnatTarget>),
    /// Refused with an ICMP error, so the client fails at once.
    Reject,
    /// Silently discarded.
    Drop,
}

impl Verdict {
    /// The possible DNAT destinations (empty unless `Dnat`).
    pub fn endpoints(&self) -> Vec<SocketAddrV4> {
        match self {
            Verdict::Dnat(t) => t.iter().map(|t| t.to).collect(),
            _ => Vec::new(),
        }
    }
    /// True when every possible DNAT branch is masqueraded.
    pub fn masqueraded(&self) -> bool {
        matches!(self, Verdict::Dnat(t) if t.iter().all(|t| t.masquerade))
    }
}

/// The verdict plus the work it took, to show per-packet cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub verdict: Verdict,
    /// Rules evaluated over all branches.
    pub rules_evaluated: usize,
    /// Verdict-map lookups performed over all branches.
    pub map_lookups: usize,
    /// Chains entered, in first-visit order.
    pub chains: Vec<String>,
}

/// Follows `packet` through `ruleset`; see `trace_detailed`.
pub fn trace(ruleset: &Ruleset, packet: &Packet) -> Verdict {
    trace_detailed(ruleset, packet).verdict
}

/// What a packet carries along one branch of a trace: its mark, where it was DNATed to,
/// whether it is to be masqueraded. Shared with the iptables-mode tracer.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub mark: u32,
    pub dnat: Option<SocketAddrV4>,
    pub masquerade: bool,
}

/// How one branch of a trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Fell off the end or hit `return`: continue in the caller.
    Return,
    Accept,
    Drop,
    Reject,
}

/// nftables allows at most 16 nested jumps; anything deeper is a loop.
const MAX_DEPTH: usize = 32;

struct Tracer<'a> {
    rs: &'a Ruleset,
    rules: usize,
    lookups: usize,
    chains: Vec<String>,
}

/// Follows `packet` through the hooks in kernel order: nat (prerouting or
/// output), then filter (input, forward or output) on the translated
/// address, then nat postrouting unless delivered locally.
pub fn trace_detailed(ruleset: &Ruleset, packet: &Packet) -> Trace {
    let mut t = Tracer {
        rs: ruleset,
        rules: 0,
        lookups: 0,
        chains: Vec::new(),
    };
    let nat_chain = match packet.origin {
        Origin::Network => "nat-prerouting",
        Origin::Host => "nat-output",
    };
    let mut outcomes = Vec::new();
    for (st, end) in t.run_base(nat_chain, packet, State::default()) {
        if matches!(end, End::Drop | End::Reject) {
            outcomes.push((st, end));
            continue;
        }
        let eff = effective(packet, &st);
        let local = ruleset.local_addrs.contains(&eff.dst) || eff.dst.is_loopback();
        let filter_chain = match (packet.origin, local) {
            (Origin::Host, _) => "filter-output",
            (Origin::Network, true) => "filter-input",
            (Origin::Network, false) => "filter-forward",
        };
        for (st, end) in t.run_base(filter_chain, &eff, st) {
            if matches!(end, End::Drop | End::Reject) || filter_chain == "filter-input" {
                outcomes.push((st, end));
                continue;
            }
            outcomes.extend(t.run_base("nat-postrouting", &eff, st));
        }
    }
    Trace {
        verdict: combine(&outcomes),
        rules_evaluated: t.rules,
        map_lookups: t.lookups,
        chains: t.chains,
    }
}

fn effective(p: &Packet, st: &State) -> Packet {
    match st.dnat {
        Some(to) => Packet {
            dst: *to.ip(),
            dport: to.port(),
            ..*p
        },
        None => *p,
    }
}

/// The verdict of all branches: the DNAT targets of those that got through, else a reject,
/// else a drop, else accept.
pub fn combine(outcomes: &[(State, End)]) -> Verdict {
    let mut targets: Vec<DnatTarget> = outcomes
        .iter()
        .filter(|(_, e)| matches!(e, End::Accept | End::Return))
        .filter_map(|(s, _)| {
            s.dnat.map(|to| DnatTarget {
                to,
                masquerade: s.masquerade,
            })
        })
        .collect();
    if !targets.is_empty() {
        targets.sort();
        targets.dedup();
        return Verdict::Dnat(targets);
    }
    if outcomes.iter().any(|(_, e)| *e == End::Reject) {
        Verdict::Reject
    } else if outcomes.iter().any(|(_, e)| *e == End::Drop) {
        Verdict::Drop
    } else {
        Verdict::Accept
    }
}

impl Tracer<'_> {
    /// A base chain: falling off the end means the policy, accept.
    fn run_base(&mut self, name: &str, p: &Packet, st: State) -> Vec<(State, End)> {
        self.run_chain(name, p, st, 0)
            .into_iter()
            .map(|(s, e)| (s, if e == End::Return { End::Accept } else { e }))
            .collect()
    }

    fn run_chain(&mut self, name: &str, p: &Packet, st: State, depth: usize) -> Vec<(State, End)> {
        if depth > MAX_DEPTH {
            return vec![(st, End::Drop)];
        }
        let Some(chain) = self.rs.chain(name) else {
            return vec![(st, End::Return)];
        };
        if !self.chains.iter().any(|c| c == name) {
            self.chains.push(name.to_string());
        }
        self.eval_from(chain, 0, p, st, depth)
    }

    fn eval_from(
        &mut self,
        chain: &Chain,
        start: usize,
        p: &Packet,
        mut st: State,
        depth: usize,
    ) -> Vec<(State, End)> {
        for (i, rule) in chain.rules.iter().enumerate().skip(start) {
            self.rules += 1;
            if !self.matches(rule, p, &st) {
                continue;
            }
            match &rule.action {
                Action::Jump(target) => {
                    let mut out = Vec::new();
                    for (s, end) in self.run_chain(target, p, st, depth + 1) {
                        if end == End::Return {
                            out.extend(self.eval_from(chain, i + 1, p, s, depth));
                        } else {
                            out.push((s, end));
                        }
                    }
                    return out;
                }
                // A goto'd chain returns straight to our caller.
                Action::Goto(target) => return self.run_chain(target, p, st, depth + 1),
                Action::Return => return vec![(st, End::Return)],
                Action::Accept => return vec![(st, End::Accept)],
                Action::Drop => return vec![(st, End::Drop)],
                Action::Reject | Action::RejectTcpReset => return vec![(st, End::Reject)],
                Action::Vmap { key, map } => {
                    self.lookups += 1;
                    let k = match key {
                        LookupKey::DaddrProtoPort => MapKey::Addr(p.dst, p.proto, p.dport),
                        LookupKey::ProtoPort => MapKey::ProtoPort(p.proto, p.dport),
                        // An endpoint map holds no verdicts.
                        LookupKey::Random(_) => continue,
                    };
                    let hit = self.rs.map(map).and_then(|m| m.elements.get(&k));
                    match hit.map(|e| &e.verdict) {
                        Some(MapVerdict::Goto(target)) => {
                            return self.run_chain(target, p, st, depth + 1)
                        }
                        Some(MapVerdict::Drop) => return vec![(st, End::Drop)],
                        Some(MapVerdict::Endpoint(_)) | None => {}
                    }
                }
                Action::NumgenGoto(targets) => {
                    let mut out = Vec::new();
                    // A drawn number picks the n-th of n equal shares of the modulus.
                    let picked = p
                        .random
                        .map(|r| (r as usize * targets.len()) / RANDOM_MODULUS as usize);
                    for (i, target) in targets.iter().enumerate() {
                        if picked.is_none_or(|k| k == i) {
                            out.extend(self.run_chain(target, p, st, depth + 1));
                        }
                    }
                    return out;
                }
                Action::DnatRandom { map, offset } => {
                    self.lookups += 1;
                    // The keys `offset + random` can be: the drawn one, or the group's all.
                    let (first, last) = match p.random {
                        Some(r) => (offset + r, offset + r),
                        None => (*offset, offset + (RANDOM_MODULUS - 1)),
                    };
                    // Intervals holding any of those keys: those starting in them, and
                    // the one before that may reach into them.
                    let elements = self.rs.map(map).map(|m| &m.elements);
                    let before =
                        elements.and_then(|e| e.range(..MapKey::Range(first, 0)).next_back());
                    let within = elements.into_iter().flat_map(|e| {
                        e.range(MapKey::Range(first, 0)..=MapKey::Range(last, u32::MAX))
                    });
                    let out: Vec<(State, End)> = before
                        .into_iter()
                        .chain(within)
                        .filter_map(|(k, e)| match (k, &e.verdict) {
                            (MapKey::Range(lo, hi), MapVerdict::Endpoint(to))
                                if *lo <= last && *hi >= first =>
                            {
                                Some((
                                    State {
                                        dnat: Some(*to),
                                        ..st
                                    },
                                    End::Accept,
                                ))
                            }
                            _ => None,
                        })
                        .collect();
                    // No element for the number: the rule does not match.
                    if !out.is_empty() {
                        return out;
                    }
                }
                Action::MarkOr(m) => st.mark |= m,
                Action::MarkXor(m) => st.mark ^= m,
                Action::Masquerade => {
                    st.masquerade = true;
                    return vec![(st, End::Accept)];
                }
                // Remembering clients and conntrack are packet-path state; not modelled.
                Action::UpdateSaddr(_) | Action::Notrack => {}
                Action::Dnat(to) => {
                    st.dnat = Some(*to);
                    return vec![(st, End::Accept)];
                }
            }
        }
        vec![(st, End::Return)]
    }

    fn matches(&self, rule: &Rule, p: &Packet, st: &State) -> bool {
        let in_set =
            |name: &str, ip: Ipv4Addr| self.rs.set(name).is_some_and(|s| s.elements.contains(&ip));
        rule.matches.iter().all(|m| match m {
            Match::CtStateNew => true,
            Match::SaddrIs(ip) => p.src == *ip,
            Match::SaddrIn(c) => c.contains(p.src),
            Match::SaddrNotIn(c) => !c.contains(p.src),
            Match::SaddrInSet(s) => in_set(s, p.src),
            Match::DaddrIs(ip) => p.dst == *ip,
            Match::DaddrIn(c) => c.contains(p.dst),
            Match::DaddrNotIn(c) => !c.contains(p.dst),
            Match::DaddrInSet(s) => in_set(s, p.dst),
            Match::Dport(proto, port) => p.proto == *proto && p.dport == *port,
            Match::L4Proto(proto) => p.proto == *proto,
            Match::FibSaddrLocal => self.rs.local_addrs.contains(&p.src) || p.src.is_loopback(),
            Match::MarkClear(m) => st.mark & m == 0,
            Match::SaddrDaddrInSet(s) => p.src == p.dst && in_set(s, p.src),
        })
    }
}
