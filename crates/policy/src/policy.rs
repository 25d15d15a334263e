//! A NetworkPolicy parsed once into selectors, address blocks and port matchers, with
//! the API's defaults applied (`policyTypes`, protocol TCP, empty lists meaning "any").

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde_json;
use kinet_selectors::LabelSelector;

use crate::cidr::{parse_cidr, IpBlock};
use crate::input::{Cluster, Pod, Proto};
use crate::PolicyError;

/// Which way a rule applies, seen from the pod the policy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A policy's namespace and name; displays as `ns/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PolicyId {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One rule of one policy; displays as `ns/name ingress[0]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RuleId {
    pub policy: PolicyId,
    pub direction: Direction,
    pub index: usize,
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]",
            self.policy,
            self.direction.as_str(),
            self.index
        )
    }
}

/// One `from`/`to` entry.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// Pods: `pods` (or all) in the policy's namespace, or in the namespaces `namespaces`
    /// selects when that is set (both set means both must hold).
    Pods {
        pods: Option<LabelSelector>,
        namespaces: Option<LabelSelector>,
    },
    Block(IpBlock),
}

/// One `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortMatch {
    /// `port` (and `endPort`): an inclusive range.
    Numbers { proto: Proto, from: u16, to: u16 },
    /// A container port name, resolved on the destination pod.
    Named { proto: Proto, name: String },
    /// Only `protocol`: every port of it.
    Any { proto: Proto },
}

impl PortMatch {
    /// Whether a packet to `dst` (a pod, if it is one) on `port`/`proto` matches.
    pub(crate) fn matches(&self, dst: Option<&Pod>, port: u16, proto: Proto) -> bool {
        match self {
            PortMatch::Numbers { proto: p, from, to } => {
                *p == proto && (*from..=*to).contains(&port)
            }
            PortMatch::Named { proto: p, name } => {
                *p == proto && dst.and_then(|d| d.named_port(name, proto)) == Some(port)
            }
            PortMatch::Any { proto: p } => *p == proto,
        }
    }
}

/// One ingress or egress rule: `None` means the list was absent or empty (matches all).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) peers: Option<Vec<Peer>>,
    pub(crate) ports: Option<Vec<PortMatch>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) id: PolicyId,
    pub(crate) pod_selector: LabelSelector,
    /// `None` when the policy does not isolate that direction (per `policyTypes`).
    pub(crate) ingress: Option<Vec<Rule>>,
    pub(crate) egress: Option<Vec<Rule>>,
}

fn selector(s: Option<&K8sSelector>) -> Result<LabelSelector, PolicyError> {
    // An absent podSelector in a spec is `{}`: every pod of the namespace.
    let Some(s) = s else {
        return Ok(LabelSelector::everything());
    };
    let v = serde_json::to_value(s).map_err(|e| PolicyError::Selector(e.to_string()))?;
    LabelSelector::from_label_selector(&v).map_err(|e| PolicyError::Selector(e.to_string()))
}

fn peer(p: &NetworkPolicyPeer) -> Result<Peer, PolicyError> {
    if let Some(b) = &p.ip_block {
        let except = b.except.iter().flatten();
        return Ok(Peer::Block(IpBlock {
            cidr: parse_cidr(&b.cidr)?,
            // IPv6 excepts (inside an IPv6 block) exclude nothing here.
            except: except
                .map(|e| parse_cidr(e))
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?,
        }));
    }
    if p.pod_selector.is_none() && p.namespace_selector.is_none() {
        return Err(PolicyError::EmptyPeer);
    }
    Ok(Peer::Pods {
        pods: p
            .pod_selector
            .as_ref()
            .map(|s| selector(Some(s)))
            .transpose()?,
        namespaces: p
            .namespace_selector
            .as_ref()
            .map(|s| selector(Some(s)))
            .transpose()?,
    })
}

fn port(p: &NetworkPolicyPort) -> Result<PortMatch, PolicyError> {
    let proto = Proto::from_k8s(p.protocol.as_deref())
        .ok_or_else(|| PolicyError::Protocol(p.protocol.clone().unwrap_or_default()))?;
    let number = |n: i32| u16::try_from(n).map_err(|_| PolicyError::Port(n.to_string()));
    Ok(match &p.port {
        None => PortMatch::Any { proto },
        Some(IntOrString::Int(n)) => PortMatch::Numbers {
            proto,
            from: number(*n)?,
            to: number(p.end_port.unwrap_or(*n))?,
        },
        Some(IntOrString::String(name)) => PortMatch::Named {
            proto,
            name: name.clone(),
        },
    })
}

/// `None` for an absent or empty list: the rule does not restrict that part.
fn nonempty<T, U>(
    list: Option<&Vec<T>>,
    f: impl Fn(&T) -> Result<U, PolicyError>,
) -> Result<Option<Vec<U>>, PolicyError> {
    match list {
        Some(l) if !l.is_empty() => l.iter().map(f).collect::<Result<_, _>>().map(Some),
        _ => Ok(None),
    }
}

type RuleParts<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// Parses the (peers, ports) of each ingress or egress rule.
fn rules<'a>(parts: impl Iterator<Item = RuleParts<'a>>) -> Result<Vec<Rule>, PolicyError> {
    parts
        .map(|(peers, ports)| {
            Ok(Rule {
                peers: nonempty(peers, peer)?,
                ports: nonempty(ports, port)?,
            })
        })
        .collect()
}

impl Policy {
    pub(crate) fn parse(np: &NetworkPolicy) -> Result<Policy, PolicyError> {
        let id = PolicyId {
            namespace: np.metadata.namespace.clone().unwrap_or_default(),
            name: np.metadata.name.clone().unwrap_or_default(),
        };
        let spec = np.spec.clone().unwrap_or_default();
        // Defaulting as the API server does it: Ingress always, Egress when egress rules exist.
        let types = match spec.policy_types.as_deref() {
            Some(t) if !t.is_empty() => t.to_vec(),
            _ => {
                let mut t = vec!["Ingress".to_string()];
                if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                    t.push("Egress".to_string());
                }
                t
            }
        };
        let has = |t: &str| types.iter().any(|x| x == t);
        let ingress = spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()));
        let egress = spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()));
        let ingress = has("Ingress").then(|| rules(ingress)).transpose()?;
        let egress = has("Egress").then(|| rules(egress)).transpose()?;
        Ok(Policy {
            pod_selector: selector(spec.pod_selector.as_ref())?,
            id,
            ingress,
            egress,
        })
    }

    pub(crate) fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Whether this policy isolates `pod` in direction `dir`.
    pub(crate) fn selects(&self, pod: &Pod, dir: Direction) -> bool {
        self.rules(dir).is_some()
            && pod.namespace == self.id.namespace
            && self.pod_selector.matches_labels(&pod.labels)
    }

    pub(crate) fn rule_id(&self, dir: Direction, index: usize) -> RuleId {
        RuleId {
            policy: self.id.clone(),
            direction: dir,
            index,
        }
    }
}

impl Peer {
    /// Whether this peer selects `pod` (address blocks match pod addresses too).
    pub(crate) fn selects_pod(&self, cluster: &Cluster, policy_ns: &str, pod: &Pod) -> bool {
        match self {
            Peer::Block(b) => b.contains(pod.ip),
            Peer::Pods { .. } => {
                self.covers_namespace(cluster, policy_ns, &pod.namespace)
                    && self.selects_labels(pod)
            }
        }
    }

    /// The namespace half of a pod peer: whether pods of `ns` may be selected.
    pub(crate) fn covers_namespace(&self, cluster: &Cluster, policy_ns: &str, ns: &str) -> bool {
        match self {
            Peer::Block(_) => true,
            Peer::Pods {
                namespaces: None, ..
            } => ns == policy_ns,
            // An unknown namespace has no labels, as an empty map.
            Peer::Pods {
                namespaces: Some(sel),
                ..
            } => sel.matches_labels(cluster.namespace_labels(ns).unwrap_or(&BTreeMap::new())),
        }
    }

    /// The pod half of a pod peer: whether `pod`'s labels match.
    pub(crate) fn selects_labels(&self, pod: &Pod) -> bool {
        match self {
            Peer::Block(b) => b.contains(pod.ip),
            Peer::Pods { pods, .. } => pods
                .as_ref()
                .is_none_or(|sel| sel.matches_labels(&pod.labels)),
        }
    }

    /// Whether this peer selects the address `ip`, which may be a pod's.
    pub(crate) fn selects_ip(&self, cluster: &Cluster, policy_ns: &str, ip: Ipv4Addr) -> bool {
        match (self, cluster.pod_by_ip(ip)) {
            (Peer::Block(b), _) => b.contains(ip),
            (Peer::Pods { .. }, Some(pod)) => self.selects_pod(cluster, policy_ns, pod),
            (Peer::Pods { .. }, None) => false,
        }
    }
}
