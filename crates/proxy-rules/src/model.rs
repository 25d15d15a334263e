//! The structured ruleset: one table of chains, sets and verdict maps.
//! Rules are data (matches + one action), so the same value can be rendered
//! to `nft -f` text and interpreted by the tracer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

// Indexes of names we render: a fast hash is safe.
use foldhash::HashMap;

/// L4 protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// From a Kubernetes protocol string; absent means TCP, unknown is `None`.
    pub fn from_k8s(p: Option<&str>) -> Option<Proto> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The lower-case name nft and kube-proxy chain names use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv4 prefixes are IPAM's: one type for every CIDR in kinet.
pub use kinet_ipam::Ipv4Cidr;

/// One condition of a rule; all matches of a rule must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ct state new`
    CtStateNew,
    /// `ip saddr 1.2.3.4`
    SaddrIs(Ipv4Addr),
    /// `ip saddr 10.244.0.0/16`
    SaddrIn(Ipv4Cidr),
    /// `ip saddr != 10.244.0.0/16`
    SaddrNotIn(Ipv4Cidr),
    /// `ip saddr @set`
    SaddrInSet(String),
    /// `ip daddr 1.2.3.4`
    DaddrIs(Ipv4Addr),
    /// `ip daddr 10.96.0.0/12`
    DaddrIn(Ipv4Cidr),
    /// `ip daddr != 224.0.0.0/4`
    DaddrNotIn(Ipv4Cidr),
    /// `ip daddr @set`
    DaddrInSet(String),
    /// `tcp dport 80`
    Dport(Proto, u16),
    /// `meta l4proto tcp`
    L4Proto(Proto),
    /// `fib saddr type local`: the source is an address of this node.
    FibSaddrLocal,
    /// `mark and 0x4000 == 0`
    MarkClear(u32),
    /// `ip saddr . ip daddr @set`: a packet between two addresses of a self-pair set, i.e.
    /// sent back to its own source (hairpin).
    SaddrDaddrInSet(String),
}

/// Which packet fields a verdict-map lookup concatenates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKey {
    /// `ip daddr . meta l4proto . th dport`
    DaddrProtoPort,
    /// `meta l4proto . th dport`
    ProtoPort,
    /// `numgen random mod 65536` (plus an endpoint group's offset) to `ip daddr . <proto>
    /// dport`: an endpoints map of one protocol, each endpoint owning a range of its
    /// group's keys as wide as its weight.
    Random(Proto),
}

/// The modulus of the random key: fixed, so re-weighting endpoints only re-splits their
/// group's ranges (map elements), never changes a rule. Also the number of keys of each
/// endpoint group.
pub const RANDOM_MODULUS: u32 = 65536;

/// What a rule does once its matches hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Jump(String),
    Goto(String),
    Return,
    Accept,
    Drop,
    /// `reject`: ICMP port-unreachable (TCP clients see ECONNREFUSED at once).
    Reject,
    /// `reject with tcp reset`: a TCP client sees ECONNREFUSED at once, and unlike ICMP
    /// errors, resets are not rate-limited by the kernel (`net.ipv4.icmp_ratelimit`).
    RejectTcpReset,
    /// `<key> vmap @map`; falls through to the next rule when nothing matches.
    Vmap {
        key: LookupKey,
        map: String,
    },
    /// `numgen random mod N vmap { 0 : goto c0, ... }`
    NumgenGoto(Vec<String>),
    /// `meta l4proto P dnat ip to numgen random mod 65536 offset O map @map` (always paired
    /// with an `L4Proto` match): the endpoint is the element of `map` holding key
    /// `O + random`, so endpoint changes are element changes.
    DnatRandom {
        map: String,
        offset: u32,
    },
    /// `mark set mark or M`
    MarkOr(u32),
    /// `mark set mark xor M`
    MarkXor(u32),
    /// `masquerade fully-random`
    Masquerade,
    /// `update @set { ip saddr }`
    UpdateSaddr(String),
    /// `dnat to ip:port` (always paired with an `L4Proto` match).
    Dnat(SocketAddrV4),
    /// `notrack`: conntrack skips the packet (only in a chain at `raw` priority).
    Notrack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// Rendered as `comment "..."`; says why the rule exists.
    pub comment: Option<&'static str>,
}

impl Rule {
    pub fn new(matches: Vec<Match>, action: Action) -> Rule {
        Rule {
            matches,
            action,
            comment: None,
        }
    }
    pub fn with_comment(mut self, comment: &'static str) -> Rule {
        self.comment = Some(comment);
        self
    }
    pub fn always(action: Action) -> Rule {
        Rule::new(Vec::new(), action)
    }
}

/// Hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

/// A base chain's attachment: `type <kind> hook <hook> priority <priority>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter` or `nat`.
    pub kind: &'static str,
    pub hook: Hook,
    /// nft priority expression, e.g. `-100` or `srcnat + 10`.
    pub priority: &'static str,
}

impl BaseChain {
    /// The priority as the number the kernel holds: a number, or one of nft's standard
    /// names with an optional `+ n` / `- n` (`None` for anything else).
    pub fn priority_value(&self) -> Option<i32> {
        let mut words = self.priority.split_whitespace();
        let first = words.next()?;
        let base = match first {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "filter" => 0,
            "security" => 50,
            "srcnat" => 100,
            n => n.parse().ok()?,
        };
        match (words.next(), words.next(), words.next()) {
            (None, _, _) => Some(base),
            (Some("+"), Some(n), None) => base.checked_add(n.parse().ok()?),
            (Some("-"), Some(n), None) => base.checked_sub(n.parse().ok()?),
            _ => None,
        }
    }
}

/// The service port a chain belongs to, for `Ruleset::chains_for`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub owner: Option<Owner>,
    pub rules: Vec<Rule>,
}

/// What a set's elements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKey {
    /// `ipv4_addr`
    Addr,
    /// `ipv4_addr . ipv4_addr`, every element an address paired with itself.
    SelfPair,
}

/// A set of addresses (`key` says how they are held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub key: SetKey,
    pub comment: Option<String>,
    /// Element lifetime in seconds; makes the set `dynamic,timeout` (affinity).
    pub timeout_secs: Option<u32>,
    pub elements: BTreeSet<Ipv4Addr>,
}

/// Key of a verdict-map element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapKey {
    Addr(Ipv4Addr, Proto, u16),
    ProtoPort(Proto, u16),
    /// `lo-hi`, a range of random numbers (inclusive).
    Range(u32, u32),
}

/// What a map element gives: a verdict, or (endpoint maps) where to DNAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapVerdict {
    Goto(String),
    Drop,
    /// `ip . port`
    Endpoint(SocketAddrV4),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub verdict: MapVerdict,
    pub comment: Option<String>,
}

/// A map (a verdict map, or an endpoints map of `LookupKey::Random`), kept sorted so
/// rendering is deterministic and lookups are cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    pub name: String,
    pub key: LookupKey,
    pub comment: Option<String>,
    pub elements: BTreeMap<MapKey, MapEntry>,
}

/// The whole desired state of one node's proxy table.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    pub(crate) table: String,
    /// The table's comment.
    pub(crate) comment: Option<String>,
    pub(crate) chains: Vec<Chain>,
    pub(crate) chain_index: HashMap<String, usize>,
    pub(crate) sets: Vec<Set>,
    pub(crate) set_index: HashMap<String, usize>,
    pub(crate) maps: Vec<Map>,
    /// Where each map is in `maps`, by name.
    pub(crate) map_index: HashMap<String, usize>,
    /// The node's own addresses: what `fib saddr type local` means to the tracer.
    pub(crate) local_addrs: Vec<Ipv4Addr>,
}

impl Ruleset {
    pub(crate) fn new(table: &str, local_addrs: Vec<Ipv4Addr>) -> Ruleset {
        Ruleset {
            table: table.to_string(),
            comment: Some("rules for kinet service proxy".into()),
            local_addrs,
            ..Ruleset::default()
        }
    }

    /// An empty table of another owner (e.g. the agent's masquerade rules), to fill with
    /// [`Ruleset::add_base_chain`] and [`Ruleset::add_rule`].
    pub fn empty(table: &str, comment: Option<&str>) -> Ruleset {
        Ruleset {
            table: table.to_string(),
            comment: comment.map(String::from),
            ..Ruleset::default()
        }
    }

    /// Adds a base chain (or attaches an existing chain of that name to `base`).
    pub fn add_base_chain(&mut self, name: &str, base: BaseChain) {
        self.chain_mut(name).base = Some(base);
    }

    /// Appends `rule` to chain `name`, adding the chain if needed.
    pub fn add_rule(&mut self, chain: &str, rule: Rule) {
        self.chain_mut(chain).rules.push(rule);
    }

    /// Adds a chain (or returns the existing one of that name) for appending rules.
    pub(crate) fn chain_mut(&mut self, name: &str) -> &mut Chain {
        // Rules are mostly appended to the chain just created: skip the hash.
        if self.chains.last().is_some_and(|c| c.name == name) {
            return self.chains.last_mut().expect("checked non-empty");
        }
        let idx = match self.chain_index.get(name) {
            Some(i) => *i,
            None => {
                self.chains.push(Chain {
                    name: name.to_string(),
                    base: None,
                    owner: None,
                    rules: Vec::new(),
                });
                self.chain_index
                    .insert(name.to_string(), self.chains.len() - 1);
                self.chains.len() - 1
            }
        };
        &mut self.chains[idx]
    }

    /// Adds a set; a set of the same name keeps its first definition.
    pub(crate) fn add_set(&mut self, set: Set) {
        if !self.set_index.contains_key(&set.name) {
            self.set_index.insert(set.name.clone(), self.sets.len());
            self.sets.push(set);
        }
    }

    pub(crate) fn set_mut(&mut self, name: &str) -> Option<&mut Set> {
        self.set_index.get(name).map(|i| &mut self.sets[*i])
    }

    /// Adds a map; a map of the same name keeps its first definition.
    pub(crate) fn add_map(&mut self, map: Map) {
        if !self.map_index.contains_key(&map.name) {
            self.map_index.insert(map.name.clone(), self.maps.len());
            self.maps.push(map);
        }
    }

    pub(crate) fn map_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.map_index.get(name).map(|i| &mut self.maps[*i])
    }

    pub fn table(&self) -> &str {
        &self.table
    }
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chain_index.get(name).map(|i| &self.chains[*i])
    }
    pub fn sets(&self) -> &[Set] {
        &self.sets
    }
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.set_index.get(name).map(|i| &self.sets[*i])
    }
    pub fn maps(&self) -> &[Map] {
        &self.maps
    }
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.map_index.get(name).map(|i| &self.maps[*i])
    }

    /// All chains generated for one Service (every port, every endpoint).
    pub fn chains_for(&self, namespace: &str, service: &str) -> Vec<&Chain> {
        self.chains
            .iter()
            .filter(|c| {
                c.owner
                    .as_ref()
                    .is_some_and(|o| o.namespace == namespace && o.service == service)
            })
            .collect()
    }

    /// Total number of rules in all chains (map elements are not rules).
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_contains_display() {
        let c: Ipv4Cidr = "10.244.1.7/16".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 244, 200, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 245, 0, 1)));
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn priorities_are_numbers_or_standard_names() {
        let prio = |priority| {
            BaseChain {
                kind: "nat",
                hook: Hook::Postrouting,
                priority,
            }
            .priority_value()
        };
        assert_eq!(prio("-100"), Some(-100));
        assert_eq!(prio("srcnat + 10"), Some(110));
        assert_eq!(prio("dstnat - 10"), Some(-110));
        assert_eq!(prio("filter"), Some(0));
        assert_eq!(prio("srcnat +"), None);
        assert_eq!(prio("late"), None);
    }

    #[test]
    fn proto_from_k8s() {
        assert_eq!(Proto::from_k8s(None), Some(Proto::Tcp));
        assert_eq!(Proto::from_k8s(Some("SCTP")), Some(Proto::Sctp));
        assert_eq!(Proto::from_k8s(Some("ICMP")), None);
    }
}
