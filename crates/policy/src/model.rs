//! The verdict model: NetworkPolicy v1 semantics over a `Cluster`, with no datapath.
//!
//! A connection is allowed when the source's egress AND the destination's ingress allow it.
//! A pod is isolated in a direction when a policy of its namespace selects it with that
//! direction in `policyTypes`; an isolated pod accepts only what some rule of some selecting
//! policy allows (the union); a pod no policy selects is open. Traffic from the destination
//! pod's own node (kubelet probes) is always allowed, as upstream implementations do.

use std::net::Ipv4Addr;

use crate::input::{Cluster, Pod, Proto};
use crate::policy::{Direction, PolicyId, RuleId};

/// One end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    Pod(&'a Pod),
    /// A node's own network namespace (kubelet, host processes), with its address.
    Host {
        node: &'a str,
        ip: Ipv4Addr,
    },
    /// Anything else: another host, or a client outside the cluster.
    External(Ipv4Addr),
}

impl Endpoint<'_> {
    pub fn ip(&self) -> Ipv4Addr {
        match self {
            Endpoint::Pod(p) => p.ip,
            Endpoint::Host { ip, .. } | Endpoint::External(ip) => *ip,
        }
    }
}

/// Why one direction let the connection through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Allow {
    /// No policy isolates this end in this direction (or it is not a pod).
    NotIsolated,
    /// The first rule, in policy (namespace, name) order, that matches.
    Rule(RuleId),
    /// The source is the destination pod's own node.
    OwnNode,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    Allowed {
        egress: Allow,
        ingress: Allow,
    },
    /// The first direction that refuses (egress is checked first), and the policies that
    /// isolate that end, none of which has a matching rule.
    Denied {
        direction: Direction,
        isolated_by: Vec<PolicyId>,
    },
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

impl Cluster {
    /// Whether a new connection from `src` to `dst` on `port`/`proto` is allowed, and why.
    pub fn verdict(&self, src: Endpoint, dst: Endpoint, port: u16, proto: Proto) -> Verdict {
        let dst_pod = match dst {
            Endpoint::Pod(p) => Some(p),
            _ => None,
        };
        let egress = match src {
            Endpoint::Pod(s) => self.check(Direction::Egress, s, dst, dst_pod, port, proto),
            _ => Ok(Allow::NotIsolated),
        };
        let egress = match egress {
            Ok(a) => a,
            Err(isolated_by) => {
                return Verdict::Denied {
                    direction: Direction::Egress,
                    isolated_by,
                }
            }
        };
        let ingress = match (src, dst_pod) {
            (Endpoint::Host { node, .. }, Some(d)) if d.node == node => Ok(Allow::OwnNode),
            (_, Some(d)) => self.check(Direction::Ingress, d, src, dst_pod, port, proto),
            (_, None) => Ok(Allow::NotIsolated),
        };
        match ingress {
            Ok(ingress) => Verdict::Allowed { egress, ingress },
            Err(isolated_by) => Verdict::Denied {
                direction: Direction::Ingress,
                isolated_by,
            },
        }
    }

    /// The first rule of the policies isolating `subject` in `dir` that lets `peer` through,
    /// or the isolating policies when none does.
    fn check(
        &self,
        dir: Direction,
        subject: &Pod,
        peer: Endpoint,
        dst_pod: Option<&Pod>,
        port: u16,
        proto: Proto,
    ) -> Result<Allow, Vec<PolicyId>> {
        let mut isolated_by = Vec::new();
        for p in self
            .policies_in(&subject.namespace)
            .filter(|p| p.selects(subject, dir))
        {
            for (i, rule) in p.rules(dir).unwrap_or_default().iter().enumerate() {
                let peer_ok = rule.peers.as_ref().is_none_or(|peers| {
                    peers.iter().any(|x| match peer {
                        Endpoint::Pod(pod) => x.selects_pod(self, &p.id.namespace, pod),
                        other => x.selects_ip(self, &p.id.namespace, other.ip()),
                    })
                });
                let port_ok = rule
                    .ports
                    .as_ref()
                    .is_none_or(|ports| ports.iter().any(|m| m.matches(dst_pod, port, proto)));
                if peer_ok && port_ok {
                    return Ok(Allow::Rule(p.rule_id(dir, i)));
                }
            }
            isolated_by.push(p.id.clone());
        }
        if isolated_by.is_empty() {
            Ok(Allow::NotIsolated)
        } else {
            Err(isolated_by)
        }
    }
}
