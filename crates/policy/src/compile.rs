//! The compiler: (policies, pods, namespaces, this node) → the node's policy table.
//!
//! Layout, in the style of kube-proxy's nftables mode:
//! - base chains `forward` and `input` accept established/related packets first, then look the
//!   source up in `egress-pods` and the destination in `ingress-pods`: verdict maps from a local
//!   isolated pod's address to its chain. Locally generated packets (the output hook: kubelet
//!   probes from this node) are not filtered.
//! - a per-pod chain holds the rules of every policy isolating that pod, in (namespace, name)
//!   order; a matching rule `return`s (this direction allows), and the end counts the drop once
//!   per isolating policy and drops.
//! - each policy rule's peers are one interval set of addresses (selected pods and ipBlocks),
//!   its numeric ports one `protocol . port` interval set, its named ports one
//!   `address . protocol . port` set: the per-packet cost is a few set lookups per rule of the
//!   pod's own policies, whatever the number of pods and policies elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::compiler::Compiler;
use crate::input::{Cluster, Pod, PodKey};
use kinet_proxy_rules::hash_and_truncate;

use crate::policy::{Direction, Peer, Policy, PolicyId, PortMatch, Rule as PolicyRule};
use crate::ruleset::{Action, AddrField, Chain, Element, Hook, Match, Rule, Ruleset, Set, SetKind};

/// The table the compiled rules live in (`table ip kinet-policy`), beside the proxy's.
pub const TABLE: &str = "kinet-policy";

const INGRESS_MAP: &str = "ingress-pods";
const EGRESS_MAP: &str = "egress-pods";

/// The desired policy table of `node`, whose own addresses are `local_addrs`: what
/// [`Compiler`] keeps up to date change by change, built from nothing.
pub fn compile(cluster: &Cluster, node: &str, local_addrs: &[Ipv4Addr]) -> Ruleset {
    Compiler::new(cluster.clone(), node, local_addrs).ruleset()
}

/// The table with its maps and base chains, no set, counter or per-pod chain.
pub(crate) fn frame(local_addrs: &[Ipv4Addr]) -> Ruleset {
    let mut rs = Ruleset {
        table: TABLE.to_string(),
        local_addrs: local_addrs.to_vec(),
        ..Ruleset::default()
    };
    rs.maps.insert(INGRESS_MAP.to_string(), Default::default());
    rs.maps.insert(EGRESS_MAP.to_string(), Default::default());
    let established = Rule {
        matches: vec![Match::CtEstablishedRelated],
        action: Action::Accept,
        comment: None,
    };
    let lookup = |f, m: &str| Rule {
        matches: Vec::new(),
        action: Action::Vmap(f, m.to_string()),
        comment: None,
    };
    rs.chains.push(Chain {
        name: "forward".into(),
        hook: Some(Hook::Forward),
        direction: None,
        rules: vec![
            established.clone(),
            lookup(AddrField::Saddr, EGRESS_MAP),
            lookup(AddrField::Daddr, INGRESS_MAP),
        ],
    });
    // Pod → this node's own addresses: only the source's egress applies.
    rs.chains.push(Chain {
        name: "input".into(),
        hook: Some(Hook::Input),
        direction: None,
        rules: vec![established, lookup(AddrField::Saddr, EGRESS_MAP)],
    });
    rs
}

/// The verdict map of the pods isolated in `dir`.
pub(crate) fn map_name(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => INGRESS_MAP,
        Direction::Egress => EGRESS_MAP,
    }
}

/// The chain of a local pod isolated in `dir` by `isolating` (in name order): their rules,
/// then one drop count per policy, then the drop.
pub(crate) fn pod_chain(pod: &Pod, dir: Direction, isolating: &[&Policy]) -> Chain {
    let mut rules: Vec<Rule> = isolating
        .iter()
        .flat_map(|p| policy_rules(p, dir))
        .collect();
    rules.extend(isolating.iter().map(|p| Rule {
        matches: Vec::new(),
        action: Action::Count(drop_counter_name(&p.id)),
        comment: None,
    }));
    rules.push(Rule {
        matches: Vec::new(),
        action: Action::Drop,
        comment: None,
    });
    Chain {
        name: pod_chain_name(dir, &pod.namespace, &pod.name),
        hook: None,
        direction: Some(dir),
        rules,
    }
}

// Names as kube-proxy builds them: a short kind, then a hash that keeps them unique and
// within nft's 256 bytes, then the readable identity (truncated if long).

fn set_name(p: &Policy, dir: Direction, index: usize, what: &str) -> String {
    let id = format!("{}/{}/{index}", p.id, dir.as_str());
    format!("{what}-{}", hash_and_truncate(&id))
}

/// The chain enforcing `dir` for one local pod.
pub(crate) fn pod_chain_name(dir: Direction, namespace: &str, pod: &str) -> String {
    let id = format!("{namespace}/{pod}");
    format!("pod-{}-{}", dir.as_str(), hash_and_truncate(&id))
}

/// The named counter of the packets a policy dropped (its isolated pods refused them).
pub fn drop_counter_name(policy: &PolicyId) -> String {
    format!("drops-{}", hash_and_truncate(&policy.to_string()))
}

/// What one rule's sets hold because of pods, by the pod that put it there: a pod's change
/// adds or removes its own elements only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleMembers {
    /// The pods a pod peer selects, at their addresses (`None`: the rule has no peers).
    pub(crate) peers: Option<BTreeMap<PodKey, Ipv4Addr>>,
    /// Each destination pod's elements of the named-port set.
    pub(crate) named: BTreeMap<PodKey, Vec<Element>>,
}

impl RuleMembers {
    /// Puts `pod` (absent: gone) where `rule` of `p` in `dir` wants it; whether that
    /// changed anything.
    pub(crate) fn update(
        &mut self,
        cluster: &Cluster,
        p: &Policy,
        dir: Direction,
        rule: &PolicyRule,
        key: &PodKey,
        pod: Option<&Pod>,
    ) -> bool {
        let mut changed = false;
        if let (Some(members), Some(peers)) = (&mut self.peers, &rule.peers) {
            let now = pod
                .filter(|pod| selects(cluster, p, peers, pod))
                .map(|pod| pod.ip);
            changed |= replace(members, key, now);
        }
        let named = pod
            .map(|pod| named_elements(p, dir, rule, pod))
            .filter(|e| !e.is_empty());
        changed | replace(&mut self.named, key, named)
    }
}

/// Sets `map[key]` to `value` (absent when `None`); whether that changed it.
fn replace<V: PartialEq>(map: &mut BTreeMap<PodKey, V>, key: &PodKey, value: Option<V>) -> bool {
    match value {
        Some(v) if map.get(key) != Some(&v) => {
            map.insert(key.clone(), v);
            true
        }
        Some(_) => false,
        None => map.remove(key).is_some(),
    }
}

/// The members of every rule of `p` in `dir`, from the whole cluster.
pub(crate) fn policy_members(cluster: &Cluster, p: &Policy, dir: Direction) -> Vec<RuleMembers> {
    // A named port resolves per destination pod: for ingress, the pods this policy selects
    // (all in its namespace); for egress, any pod.
    let dsts = || -> Box<dyn Iterator<Item = &Pod>> {
        match dir {
            Direction::Ingress => Box::new(cluster.pods_in(&p.id.namespace)),
            Direction::Egress => Box::new(cluster.pods()),
        }
    };
    let rules = p.rules(dir).unwrap_or_default();
    rules
        .iter()
        .map(|rule| RuleMembers {
            peers: rule.peers.as_ref().map(|peers| selected(cluster, p, peers)),
            named: dsts()
                .map(|pod| (pod, named_elements(p, dir, rule, pod)))
                .filter(|(_, e)| !e.is_empty())
                .map(|(pod, e)| ((pod.namespace.clone(), pod.name.clone()), e))
                .collect(),
        })
        .collect()
}

/// Whether a pod peer of `peers` (of policy `p`) selects `pod`.
fn selects(cluster: &Cluster, p: &Policy, peers: &[Peer], pod: &Pod) -> bool {
    peers.iter().any(|peer| {
        matches!(peer, Peer::Pods { .. }) && peer.selects_pod(cluster, &p.id.namespace, pod)
    })
}

/// The pods the pod peers of `peers` select, at their addresses.
fn selected(cluster: &Cluster, p: &Policy, peers: &[Peer]) -> BTreeMap<PodKey, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for peer in peers {
        let candidates: Box<dyn Iterator<Item = &Pod>> = match peer {
            Peer::Block(_) => continue,
            Peer::Pods {
                namespaces: None, ..
            } => Box::new(cluster.pods_in(&p.id.namespace)),
            Peer::Pods { .. } => Box::new(cluster.pods()),
        };
        // Pods come namespace by namespace: each namespace's selector is matched once.
        let mut covered: Option<(&str, bool)> = None;
        for pod in candidates {
            let ns_ok = match covered {
                Some((ns, ok)) if ns == pod.namespace => ok,
                _ => {
                    let ok = peer.covers_namespace(cluster, &p.id.namespace, &pod.namespace);
                    covered = Some((&pod.namespace, ok));
                    ok
                }
            };
            if ns_ok && peer.selects_labels(pod) {
                out.insert((pod.namespace.clone(), pod.name.clone()), pod.ip);
            }
        }
    }
    out
}

/// `pod`'s elements in the named-port set of `rule`, as a destination: its own number for
/// each named port of the rule (for ingress, only when `p` selects it).
fn named_elements(p: &Policy, dir: Direction, rule: &PolicyRule, pod: &Pod) -> Vec<Element> {
    let named = rule.ports.iter().flatten().filter_map(|m| match m {
        PortMatch::Named { proto, name } => Some((*proto, name)),
        _ => None,
    });
    if dir == Direction::Ingress && !p.selects(pod, dir) {
        return Vec::new();
    }
    let mut out: Vec<Element> = named
        .filter_map(|(proto, name)| {
            pod.named_port(name, proto)
                .map(|n| Element::AddrProtoPort(pod.ip, proto, n))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The peer and port sets of every rule of `p` in `dir`, holding `members`.
pub(crate) fn policy_sets(p: &Policy, dir: Direction, members: &[RuleMembers]) -> Vec<Set> {
    let mut sets = Vec::new();
    let rules = p.rules(dir).unwrap_or_default();
    for (i, (rule, m)) in rules.iter().zip(members).enumerate() {
        let comment = p.rule_id(dir, i).to_string();
        let mut add = |what, kind, elements| {
            sets.push(Set {
                name: set_name(p, dir, i, what),
                kind,
                comment: comment.clone(),
                elements,
            })
        };
        if let (Some(peers), Some(pods)) = (&rule.peers, &m.peers) {
            add("peers", SetKind::Addr, peer_ranges(peers, pods));
        }
        let Some(ports) = &rule.ports else { continue };
        let (has_numeric, has_named) = port_kinds(ports);
        if has_numeric {
            let numeric = ports
                .iter()
                .filter_map(|m| match *m {
                    PortMatch::Numbers { proto, from, to } => {
                        Some(Element::ProtoPorts(proto, from, to))
                    }
                    PortMatch::Any { proto } => Some(Element::ProtoPorts(proto, 0, u16::MAX)),
                    PortMatch::Named { .. } => None,
                })
                .collect();
            add("ports", SetKind::ProtoPort, numeric);
        }
        if has_named {
            let named = m.named.values().flatten().cloned().collect();
            add("named-ports", SetKind::AddrProtoPort, named);
        }
    }
    sets
}

/// Whether a rule's ports include numeric (or protocol-only) entries, and named ones: each kind
/// has its own set and chain line.
fn port_kinds(ports: &[PortMatch]) -> (bool, bool) {
    let named = |m: &&PortMatch| matches!(m, PortMatch::Named { .. });
    (
        ports.iter().any(|m| !named(&m)),
        ports.iter().any(|m| named(&m)),
    )
}

/// The addresses of a rule's blocks and selected pods, merged into disjoint ranges.
fn peer_ranges(peers: &[Peer], pods: &BTreeMap<PodKey, Ipv4Addr>) -> BTreeSet<Element> {
    let mut ranges: Vec<(u32, u32)> = pods
        .values()
        .map(|ip| (u32::from(*ip), u32::from(*ip)))
        .collect();
    for peer in peers {
        if let Peer::Block(b) = peer {
            ranges.extend(b.ranges());
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
        .into_iter()
        .map(|(a, b)| Element::Range(a.into(), b.into()))
        .collect()
}

/// The chain rules of `p` in `dir`: per policy rule, one line per kind of port (numeric,
/// named), or one line when the rule has no ports; each returns when it matches.
fn policy_rules(p: &Policy, dir: Direction) -> Vec<Rule> {
    let peer_field = match dir {
        Direction::Ingress => AddrField::Saddr,
        Direction::Egress => AddrField::Daddr,
    };
    let mut out = Vec::new();
    for (i, rule) in p.rules(dir).unwrap_or_default().iter().enumerate() {
        let mut base = Vec::new();
        if rule.peers.is_some() {
            base.push(Match::AddrInSet(peer_field, set_name(p, dir, i, "peers")));
        }
        let port_matches = match &rule.ports {
            None => vec![None],
            Some(ports) => {
                let (has_numeric, has_named) = port_kinds(ports);
                let mut m = Vec::new();
                if has_numeric {
                    m.push(Some(Match::ProtoPortInSet(set_name(p, dir, i, "ports"))));
                }
                if has_named {
                    m.push(Some(Match::DaddrProtoPortInSet(set_name(
                        p,
                        dir,
                        i,
                        "named-ports",
                    ))));
                }
                m
            }
        };
        for pm in port_matches {
            out.push(Rule {
                matches: base.iter().cloned().chain(pm).collect(),
                action: Action::Return,
                comment: Some(p.rule_id(dir, i).to_string()),
            });
        }
    }
    out
}
