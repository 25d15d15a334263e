//! The policy table as data: sets, verdict maps, named counters and chains. The same value is
//! rendered to `nft -f` text and interpreted by the tracer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::net::Ipv4Addr;

use crate::input::Proto;
use crate::policy::Direction;

/// Which address of the packet a match or lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrField {
    Saddr,
    Daddr,
}

impl AddrField {
    fn nft(self) -> &'static str {
        match self {
            AddrField::Saddr => "ip saddr",
            AddrField::Daddr => "ip daddr",
        }
    }
}

/// The element type of a named set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Peer addresses, as ranges (`flags interval`).
    Addr,
    /// `protocol . port` ranges of numeric policy ports.
    ProtoPort,
    /// `address . protocol . port` of named ports resolved per pod.
    AddrProtoPort,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Element {
    Range(Ipv4Addr, Ipv4Addr),
    ProtoPorts(Proto, u16, u16),
    AddrProtoPort(Ipv4Addr, Proto, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub kind: SetKind,
    /// The policy rule the set belongs to.
    pub comment: String,
    pub elements: BTreeSet<Element>,
}

impl Set {
    /// `add set …` of this set (without its elements), in table `ip <table>`.
    pub fn declaration(&self, table: &str) -> String {
        let spec = match self.kind {
            SetKind::Addr => "type ipv4_addr ; flags interval ;",
            SetKind::ProtoPort => "type inet_proto . inet_service ; flags interval ;",
            SetKind::AddrProtoPort => "type ipv4_addr . inet_proto . inet_service ;",
        };
        format!(
            "add set ip {table} {} {{ {spec} comment \"{}\" ; }}",
            self.name, self.comment
        )
    }

    pub(crate) fn contains(&self, ip: Ipv4Addr, proto: Proto, port: u16) -> bool {
        self.elements.iter().any(|e| match *e {
            Element::Range(a, b) => (a..=b).contains(&ip),
            Element::ProtoPorts(p, a, b) => p == proto && (a..=b).contains(&port),
            Element::AddrProtoPort(i, p, n) => (i, p, n) == (ip, proto, port),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ct state established,related`
    CtEstablishedRelated,
    /// `ip saddr @set` / `ip daddr @set`
    AddrInSet(AddrField, String),
    /// `meta l4proto . th dport @set`
    ProtoPortInSet(String),
    /// `ip daddr . meta l4proto . th dport @set`
    DaddrProtoPortInSet(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    /// Back to the base chain: this direction allows the packet.
    Return,
    /// `counter name "<n>"`, then the next rule.
    Count(String),
    /// `ip saddr vmap @map`: jump to the chain of that address, if any.
    Vmap(AddrField, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// For an allowing rule, the policy rule it comes from (`ns/name ingress[0]`).
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Forward,
    Input,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub hook: Option<Hook>,
    /// Set on a per-pod chain: the direction it enforces.
    pub direction: Option<Direction>,
    pub rules: Vec<Rule>,
}

/// The desired `table ip kinet-policy` of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub sets: Vec<Set>,
    /// Verdict maps `ipv4_addr : verdict`, each element a `jump` to a per-pod chain.
    pub maps: BTreeMap<String, BTreeMap<Ipv4Addr, String>>,
    /// Named counters of dropped packets, one per policy.
    pub counters: BTreeSet<String>,
    pub chains: Vec<Chain>,
    /// The node's own addresses: packets to them take the input hook.
    pub local_addrs: Vec<Ipv4Addr>,
}

impl Ruleset {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The ruleset as `nft -f` input: one transaction that replaces the whole table.
    pub fn to_nft(&self) -> String {
        let t = format!("ip {}", self.table);
        let mut out = String::new();
        let _ = writeln!(out, "add table {t}");
        let _ = writeln!(out, "delete table {t}");
        let _ = writeln!(
            out,
            "add table {t} {{ comment \"rules for kinet network policy\" ; }}\n"
        );
        for s in &self.sets {
            let _ = writeln!(out, "{}", s.declaration(&self.table));
        }
        for m in self.maps.keys() {
            let _ = writeln!(out, "add map {t} {m} {{ type ipv4_addr : verdict ; }}");
        }
        for c in &self.counters {
            let _ = writeln!(out, "add counter {t} {c}");
        }
        out.push('\n');
        for c in &self.chains {
            let _ = match c.hook {
                Some(h) => writeln!(
                    out,
                    "add chain {t} {} {{ type filter hook {} priority filter ; }}",
                    c.name,
                    match h {
                        Hook::Forward => "forward",
                        Hook::Input => "input",
                    }
                ),
                None => writeln!(out, "add chain {t} {}", c.name),
            };
        }
        out.push('\n');
        for c in &self.chains {
            for r in &c.rules {
                let _ = writeln!(out, "add rule {t} {} {}", c.name, r.to_nft());
            }
        }
        out.push('\n');
        for s in &self.sets {
            for e in &s.elements {
                let _ = writeln!(out, "add element {t} {} {{ {e} }}", s.name);
            }
        }
        for (m, elements) in &self.maps {
            for (ip, chain) in elements {
                let _ = writeln!(out, "add element {t} {m} {{ {ip} : jump {chain} }}");
            }
        }
        out
    }

    /// The same table with every set and map emptied: two rulesets with the same skeleton
    /// differ only in elements, which the kernel can change one by one.
    pub fn skeleton(&self) -> Ruleset {
        let mut s = self.clone();
        s.local_addrs.clear();
        for set in &mut s.sets {
            set.elements.clear();
        }
        for m in s.maps.values_mut() {
            m.clear();
        }
        s
    }
}

impl fmt::Display for Element {
    /// As `nft` writes it inside `{ }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Range(a, b) if a == b => write!(f, "{a}"),
            Element::Range(a, b) => write!(f, "{a}-{b}"),
            Element::ProtoPorts(p, a, b) if a == b => write!(f, "{p} . {a}"),
            Element::ProtoPorts(p, a, b) => write!(f, "{p} . {a}-{b}"),
            Element::AddrProtoPort(i, p, n) => write!(f, "{i} . {p} . {n}"),
        }
    }
}

impl Rule {
    /// The rule as `nft add rule` writes it after the chain name.
    pub fn to_nft(&self) -> String {
        let mut out = String::new();
        for m in &self.matches {
            let _ = match m {
                Match::CtEstablishedRelated => write!(out, "ct state established,related "),
                Match::AddrInSet(f, s) => write!(out, "{} @{s} ", f.nft()),
                Match::ProtoPortInSet(s) => write!(out, "meta l4proto . th dport @{s} "),
                Match::DaddrProtoPortInSet(s) => {
                    write!(out, "ip daddr . meta l4proto . th dport @{s} ")
                }
            };
        }
        let _ = match &self.action {
            Action::Accept => write!(out, "accept"),
            Action::Drop => write!(out, "drop"),
            Action::Return => write!(out, "return"),
            Action::Count(c) => write!(out, "counter name \"{c}\""),
            Action::Vmap(f, m) => write!(out, "{} vmap @{m}", f.nft()),
        };
        if let Some(c) = &self.comment {
            let _ = write!(out, " comment \"{c}\"");
        }
        out
    }
}
