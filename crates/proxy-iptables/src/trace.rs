//! A small interpreter of the rendered chains: follows a packet's first (conntrack NEW)
//! pass through the built-in chains in kernel order and reports every possible outcome,
//! in the same terms as the nftables tracer (`kinet_proxy_rules::Verdict`), so the two
//! modes can be checked against each other. `-m statistic` is expanded into both of its
//! branches; `-m recent` lists are treated as empty (no remembered clients).

use std::net::Ipv4Addr;

use kinet_proxy_rules::trace::{combine, End, State};
use kinet_proxy_rules::{Origin, Packet, Verdict};

use crate::rule::{Match, Rule, Target};
use crate::tables::{jumps, Jump, Table, Tables};

/// iptables refuses loops; anything this deep is one.
const MAX_DEPTH: usize = 32;

struct Tracer<'a> {
    tables: &'a Tables,
    jumps: Vec<Jump>,
}

/// Follows `packet` through nat (PREROUTING or OUTPUT), then filter (INPUT, FORWARD or
/// OUTPUT) on the translated address, then nat POSTROUTING unless delivered locally.
pub fn trace(tables: &Tables, packet: &Packet) -> Verdict {
    let t = Tracer {
        tables,
        jumps: jumps(),
    };
    let nat = match packet.origin {
        Origin::Network => "PREROUTING",
        Origin::Host => "OUTPUT",
    };
    let mut outcomes = Vec::new();
    for (st, end) in t.builtin(Table::Nat, nat, packet, State::default()) {
        if matches!(end, End::Drop | End::Reject) {
            outcomes.push((st, end));
            continue;
        }
        let eff = match st.dnat {
            Some(to) => Packet {
                dst: *to.ip(),
                dport: to.port(),
                ..*packet
            },
            None => *packet,
        };
        let local = tables.local_addrs.contains(&eff.dst) || eff.dst.is_loopback();
        let filter = match (packet.origin, local) {
            (Origin::Host, _) => "OUTPUT",
            (Origin::Network, true) => "INPUT",
            (Origin::Network, false) => "FORWARD",
        };
        for (st, end) in t.builtin(Table::Filter, filter, &eff, st) {
            if matches!(end, End::Drop | End::Reject) || filter == "INPUT" {
                outcomes.push((st, end));
            } else {
                outcomes.extend(t.builtin(Table::Nat, "POSTROUTING", &eff, st));
            }
        }
    }
    combine(&outcomes)
}

impl Tracer<'_> {
    /// A built-in chain holding only kube-proxy's jumps; its policy is ACCEPT.
    fn builtin(&self, table: Table, chain: &str, p: &Packet, st: State) -> Vec<(State, End)> {
        let rules: Vec<Rule> = self
            .jumps
            .iter()
            .filter(|j| j.table == table && j.builtin == chain)
            .map(|j| j.rule.clone())
            .collect();
        self.eval(table, &rules, 0, p, st, 0)
            .into_iter()
            .map(|(s, e)| (s, if e == End::Return { End::Accept } else { e }))
            .collect()
    }

    fn eval(
        &self,
        table: Table,
        rules: &[Rule],
        start: usize,
        p: &Packet,
        st: State,
        depth: usize,
    ) -> Vec<(State, End)> {
        if depth > MAX_DEPTH {
            return vec![(st, End::Drop)];
        }
        for (i, rule) in rules.iter().enumerate().skip(start) {
            if !self.matches(rule, p, &st) {
                continue;
            }
            let mut out = self.fire(table, rules, i, p, st, depth);
            // A random match may also not hold: follow that branch too.
            if rule
                .matches
                .iter()
                .any(|m| matches!(m, Match::OneIn(n) if *n > 1))
            {
                out.extend(self.eval(table, rules, i + 1, p, st, depth));
            }
            return out;
        }
        vec![(st, End::Return)]
    }

    /// The outcomes of rule `i` of `rules` firing.
    fn fire(
        &self,
        table: Table,
        rules: &[Rule],
        i: usize,
        p: &Packet,
        mut st: State,
        depth: usize,
    ) -> Vec<(State, End)> {
        match &rules[i].target {
            Target::Jump(chain) => {
                let Some(sub) = self.tables.chains(table).get(chain) else {
                    return self.eval(table, rules, i + 1, p, st, depth);
                };
                let mut out = Vec::new();
                for (s, end) in self.eval(table, sub, 0, p, st, depth + 1) {
                    if end == End::Return {
                        out.extend(self.eval(table, rules, i + 1, p, s, depth));
                    } else {
                        out.push((s, end));
                    }
                }
                out
            }
            Target::Dnat(to) => {
                st.dnat = Some(*to);
                vec![(st, End::Accept)]
            }
            Target::Masquerade => {
                st.masquerade = true;
                vec![(st, End::Accept)]
            }
            Target::Reject => vec![(st, End::Reject)],
            Target::Drop => vec![(st, End::Drop)],
            Target::Accept => vec![(st, End::Accept)],
            Target::Return => vec![(st, End::Return)],
            Target::MarkOr(m) => {
                st.mark |= m;
                self.eval(table, rules, i + 1, p, st, depth)
            }
            Target::MarkXor(m) => {
                st.mark ^= m;
                self.eval(table, rules, i + 1, p, st, depth)
            }
        }
    }

    fn matches(&self, rule: &Rule, p: &Packet, st: &State) -> bool {
        let local = |ip: Ipv4Addr| self.tables.local_addrs.contains(&ip) || ip.is_loopback();
        rule.matches.iter().all(|m| match m {
            Match::Proto(proto) => p.proto == *proto,
            Match::Src(ip) => p.src == *ip,
            Match::SrcIn(c) => c.contains(p.src),
            Match::SrcNotIn(c) => !c.contains(p.src),
            Match::Dst(ip) => p.dst == *ip,
            Match::Dport(port) => p.dport == *port,
            Match::SrcLocal => local(p.src),
            Match::DstLocal => local(p.dst),
            Match::OneIn(_) | Match::RecentSet(_) | Match::CtNew => true,
            Match::RecentCheck { .. } | Match::CtEstablished => false,
            Match::Mark(m) => st.mark & m == *m,
            Match::NotMark(m) => st.mark & m != *m,
        })
    }
}
