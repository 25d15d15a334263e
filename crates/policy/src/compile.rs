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
use crate::input::{Cluster, Pod};
use kinet_proxy_rules::hash_and_truncate;

use crate::policy::{Direction, Peer, Policy, PolicyId, PortMatch};
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

/// The peer and port sets of every rule of `p` in `dir`.
pub(crate) fn policy_sets(
    cluster: &Cluster,
    by_ns: &BTreeMap<&str, Vec<&Pod>>,
    p: &Policy,
    dir: Direction,
) -> Vec<Set> {
    let mut sets = Vec::new();
    for (i, rule) in p.rules(dir).unwrap_or_default().iter().enumerate() {
        let comment = p.rule_id(dir, i).to_string();
        let mut add = |what, kind, elements| {
            sets.push(Set {
                name: set_name(p, dir, i, what),
                kind,
                comment: comment.clone(),
                elements,
            })
        };
        if let Some(peers) = &rule.peers {
            add(
                "peers",
                SetKind::Addr,
                peer_ranges(cluster, by_ns, p, peers),
            );
        }
        let Some(ports) = &rule.ports else { continue };
        let numeric: BTreeSet<Element> = ports
            .iter()
            .filter_map(|m| match *m {
                PortMatch::Numbers { proto, from, to } => {
                    Some(Element::ProtoPorts(proto, from, to))
                }
                PortMatch::Any { proto } => Some(Element::ProtoPorts(proto, 0, u16::MAX)),
                PortMatch::Named { .. } => None,
            })
            .collect();
        // A named port resolves per destination pod: list each possible destination's own
        // number for it (for ingress, the pods this policy selects, all in its namespace).
        let named: BTreeSet<Element> = ports
            .iter()
            .filter_map(|m| match m {
                PortMatch::Named { proto, name } => Some((*proto, name)),
                _ => None,
            })
            .flat_map(|(proto, name)| {
                let dsts: Vec<&Pod> = match dir {
                    Direction::Egress => cluster.pods().iter().collect(),
                    Direction::Ingress => by_ns
                        .get(p.id.namespace.as_str())
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|pod| p.selects(cluster, pod, dir))
                        .collect(),
                };
                dsts.into_iter().filter_map(move |pod| {
                    pod.named_port(name, proto)
                        .map(|n| Element::AddrProtoPort(pod.ip, proto, n))
                })
            })
            .collect();
        let (has_numeric, has_named) = port_kinds(ports);
        if has_numeric {
            add("ports", SetKind::ProtoPort, numeric);
        }
        if has_named {
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

/// The addresses a rule's peers select, merged into disjoint ranges.
fn peer_ranges(
    cluster: &Cluster,
    by_ns: &BTreeMap<&str, Vec<&Pod>>,
    p: &Policy,
    peers: &[Peer],
) -> BTreeSet<Element> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for peer in peers {
        match peer {
            Peer::Block(b) => ranges.extend(b.ranges()),
            // Namespaces first: most are ruled out before any pod's labels are looked at.
            Peer::Pods { .. } => ranges.extend(
                by_ns
                    .iter()
                    .filter(|(ns, _)| peer.covers_namespace(cluster, &p.id.namespace, ns))
                    .flat_map(|(_, pods)| pods)
                    .filter(|pod| peer.selects_labels(cluster, pod))
                    .map(|pod| (u32::from(pod.ip), u32::from(pod.ip))),
            ),
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
