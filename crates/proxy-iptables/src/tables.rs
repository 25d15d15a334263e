//! The chains kube-proxy owns in the `filter` and `nat` tables, and the jumps into them
//! from the built-in chains.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use kinet_proxy_rules::Proto;

use crate::rule::{Match, Rule, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Filter, Table::Nat];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

/// Chains of one table by name; rules in order.
pub type Chains = BTreeMap<String, Vec<Rule>>;

/// A rule in a built-in chain (`PREROUTING`, `INPUT`, ...) leading into kube-proxy's.
#[derive(Debug, Clone, PartialEq)]
pub struct Jump {
    pub table: Table,
    pub builtin: &'static str,
    pub rule: Rule,
}

/// One node's desired kube-proxy chains.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub filter: Chains,
    pub nat: Chains,
    /// The node's own addresses (what `--dst-type LOCAL` means to the tracer).
    pub local_addrs: Vec<Ipv4Addr>,
}

impl Tables {
    pub fn chains(&self, table: Table) -> &Chains {
        match table {
            Table::Filter => &self.filter,
            Table::Nat => &self.nat,
        }
    }

    pub(crate) fn push(&mut self, table: Table, chain: &str, rule: Rule) {
        self.chain_mut(table, chain).push(rule);
    }

    /// Declares `chain` (empty) if it is not there yet.
    pub(crate) fn chain_mut(&mut self, table: Table, chain: &str) -> &mut Vec<Rule> {
        let chains = match table {
            Table::Filter => &mut self.filter,
            Table::Nat => &mut self.nat,
        };
        if !chains.contains_key(chain) {
            chains.insert(chain.to_string(), Vec::new());
        }
        chains.get_mut(chain).expect("just inserted")
    }

    /// Where UDP is DNATed to: the endpoints whose conntrack entries must go once they
    /// leave (a UDP flow would otherwise stick to a gone endpoint until it idles out).
    pub fn udp_targets(&self) -> BTreeSet<SocketAddrV4> {
        (self.nat.values().flatten())
            .filter(|r| r.matches.contains(&Match::Proto(Proto::Udp)))
            .filter_map(|r| match r.target {
                Target::Dnat(to) => Some(to),
                _ => None,
            })
            .collect()
    }

    /// Total rules in kube-proxy's chains (built-in jumps not counted).
    pub fn rule_count(&self) -> usize {
        self.filter
            .values()
            .chain(self.nat.values())
            .map(Vec::len)
            .sum()
    }
}

/// kube-proxy's `iptablesJumpChains` (less the health-check chain: kinet's health-check
/// servers need no rule), in the order they end up in the built-in chains: the
/// load-balancer firewall first, as kube-proxy's last prepended jump.
pub fn jumps() -> Vec<Jump> {
    let jump = |table, builtin, comment: &str, new_only: bool, to: &str| Jump {
        table,
        builtin,
        rule: Rule::new(
            Some(comment.into()),
            if new_only {
                vec![Match::CtNew]
            } else {
                Vec::new()
            },
            Target::Jump(to.into()),
        ),
    };
    let ext = "kubernetes externally-visible service portals";
    let portals = "kubernetes service portals";
    let firewall = "kubernetes load balancer firewall";
    vec![
        jump(Table::Filter, "INPUT", firewall, true, KUBE_PROXY_FIREWALL),
        jump(
            Table::Filter,
            "FORWARD",
            firewall,
            true,
            KUBE_PROXY_FIREWALL,
        ),
        jump(Table::Filter, "OUTPUT", firewall, true, KUBE_PROXY_FIREWALL),
        jump(Table::Filter, "INPUT", ext, true, KUBE_EXTERNAL_SERVICES),
        jump(Table::Filter, "FORWARD", ext, true, KUBE_EXTERNAL_SERVICES),
        jump(Table::Filter, "FORWARD", portals, true, KUBE_SERVICES),
        jump(Table::Filter, "OUTPUT", portals, true, KUBE_SERVICES),
        jump(
            Table::Filter,
            "FORWARD",
            "kubernetes forwarding rules",
            false,
            KUBE_FORWARD,
        ),
        jump(Table::Nat, "OUTPUT", portals, false, KUBE_SERVICES),
        jump(Table::Nat, "PREROUTING", portals, false, KUBE_SERVICES),
        jump(
            Table::Nat,
            "POSTROUTING",
            "kubernetes postrouting rules",
            false,
            KUBE_POSTROUTING,
        ),
    ]
}
