//! A cluster's machines: the underlay and one network namespace per node, kind-style.
//!
//! ```text
//! host ns:   kn-<cluster> (veth, underlay gateway .1/32) + route <underlay>/16 dev kn-<cluster>
//!               |
//! kinet-<cluster>-underlay:  host0 --- br0 --- veth0, veth1, ...
//!                                                |
//! kinet-<cluster>-<node>:                       eth0 (.2, .3, ...; 10.96.0.0/12 via .1;
//!                                                     unreachable default, or via .1 with --egress)
//! ```
//!
//! The host end of the one host link carries the gateway address, so agents in the nodes
//! reach the API server on `<gateway>:<port>` and the host reaches every node address. Link
//! names are limited to 15 bytes: the host link is `kn-<cluster>` when that fits, else
//! `kn-` + the first 7 characters + a 5-hex-digit hash of the full name.
//!
//! This file is the plan (pure); [`net`] applies it with netlink, [`agents`] runs the agents.

pub mod agents;
pub mod claims;
mod lifecycle;
pub mod net;

pub use lifecycle::{
    abandon, prepare, ready_since, recorded_plan, start_agents, teardown, wait_ready,
    write_credentials, AgentWatch,
};

use std::net::Ipv4Addr;

use kinet_cni::Underlay;
use kinet_ipam::Ipv4Cidr;

/// The underlay subnets `up` may use, in order of preference (kind's default first).
pub fn candidate_subnets() -> Vec<Ipv4Cidr> {
    (18..=31u8)
        .filter_map(|b| Ipv4Cidr::new(Ipv4Addr::new(172, b, 0, 0), 16).ok())
        .collect()
}

/// The first candidate that overlaps none of `routes` (a route inside it, or it inside a
/// route). Default routes (prefix 0) are ignored: every address is "inside" them.
pub fn pick_subnet(candidates: &[Ipv4Cidr], routes: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
    candidates
        .iter()
        .find(|c| overlapping(c, routes).is_none())
        .copied()
}

/// The first route of `routes` that overlaps `cidr`, default routes aside.
pub fn overlapping(cidr: &Ipv4Cidr, routes: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
    routes
        .iter()
        .filter(|r| r.prefix() > 0)
        .find(|r| r.contains_cidr(cidr) || cidr.contains_cidr(r))
        .copied()
}

/// Node names as kind makes them: `<cluster>-control-plane`, `<cluster>-worker`,
/// `<cluster>-worker2`, ...
pub fn node_names(cluster: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i {
            0 => format!("{cluster}-control-plane"),
            1 => format!("{cluster}-worker"),
            n => format!("{cluster}-worker{n}"),
        })
        .collect()
}

/// The "outside" namespace: a client on the underlay that is not a node.
pub fn outside_netns(cluster: &str) -> String {
    format!("kinet-{cluster}-outside")
}

/// The outside namespace's underlay veth (inside the underlay namespace) and its address:
/// just below the default load balancer pool at the top of the underlay.
pub const OUTSIDE_VETH: &str = "vout";

/// The outside namespace's address on `cidr`.
pub fn outside_ip(cidr: Ipv4Cidr) -> Ipv4Addr {
    let (pool_start, _) = kinet_controllers::loadbalancer::default_range(cidr);
    Ipv4Addr::from(u32::from(pool_start) - 1)
}

/// The underlay's namespace.
pub fn underlay_netns(cluster: &str) -> String {
    format!("kinet-{cluster}-underlay")
}

/// A node's namespace.
pub fn node_netns(cluster: &str, node: &str) -> String {
    format!("kinet-{cluster}-{node}")
}

/// The one link kinet adds to the host: `kn-<cluster>`, shortened with a hash past 15 bytes.
pub fn host_link_name(cluster: &str) -> String {
    const MAX: usize = 15;
    let full = format!("kn-{cluster}");
    if full.len() <= MAX {
        return full;
    }
    let hash = kinet_types::hash::fnv1a_32(cluster);
    format!("kn-{}{:05x}", &cluster[..7], hash & 0xf_ffff)
}

/// The host link's peer inside the underlay namespace.
pub const HOST_PEER: &str = "host0";

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// The underlay end of its `eth0` veth (inside the underlay namespace).
    pub underlay_veth: String,
    /// Its `eth0` address.
    pub ip: Ipv4Addr,
    /// The first node is the control plane.
    pub control_plane: bool,
}

/// The whole network of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cluster: String,
    pub underlay: Underlay,
    pub underlay_netns: String,
    pub host_link: String,
    pub nodes: Vec<NodePlan>,
    /// The outside namespace and its address (see [`outside_ip`]).
    pub outside_netns: String,
    pub outside_ip: Ipv4Addr,
    /// `kinet up --egress`: a default route via the host instead of an unreachable one
    /// (see [`crate::egress`]).
    pub egress: bool,
}

/// Where a route sends its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// To the host through the underlay gateway.
    Via(Ipv4Addr),
    /// Nowhere: dropped in the namespace, the sender told at once (`EHOSTUNREACH`, or ICMP
    /// host unreachable for a forwarded pod packet).
    Unreachable,
}

/// A route kinet keeps in a node or the outside namespace, beyond the underlay's own
/// (connected) route and the pod network's routes the agent adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Cidr,
    pub exit: Exit,
}

impl Plan {
    /// The plan for `count` nodes on `cidr`: gateway .1 on the host link, nodes from .2.
    pub fn new(cluster: &str, cidr: Ipv4Cidr, count: usize) -> Plan {
        let underlay = Underlay::new(cidr);
        let nodes = node_names(cluster, count)
            .into_iter()
            .enumerate()
            .map(|(i, name)| NodePlan {
                netns: node_netns(cluster, &name),
                underlay_veth: format!("veth{i}"),
                ip: cidr.nth(2 + i as u64).unwrap_or(cidr.network()),
                control_plane: i == 0,
                name,
            })
            .collect();
        Plan {
            cluster: cluster.to_string(),
            underlay,
            underlay_netns: underlay_netns(cluster),
            host_link: host_link_name(cluster),
            nodes,
            outside_netns: outside_netns(cluster),
            outside_ip: outside_ip(cidr),
            egress: false,
        }
    }

    /// The plan with the cluster's recorded `--egress`.
    pub fn with_egress(self, egress: bool) -> Plan {
        Plan { egress, ..self }
    }

    /// The default route of every node and of the outside namespace: via the host only with
    /// `--egress`. Everything else in the cluster is reached without it: the underlay is
    /// connected, pod ranges have routes of their own, Services are rewritten on the node.
    pub fn default_route(&self) -> Route {
        Route {
            destination: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).expect("prefix 0 is valid"),
            exit: if self.egress {
                Exit::Via(self.underlay.gateway)
            } else {
                Exit::Unreachable
            },
        }
    }

    /// A node's routes: the default route, and one for the Service range. A socket on the
    /// node needs a route for a ClusterIP before the proxy's output DNAT rewrites it to an
    /// endpoint (which the kernel then routes anew); a ClusterIP nobody allocated is dropped
    /// by the proxy, so this range never reaches the host.
    pub fn node_routes(&self) -> Vec<Route> {
        let services = kinet_proxy::ProxyConfig::default()
            .service_cidr
            .parse()
            .expect("the proxy's default Service range is a valid CIDR");
        vec![
            Route {
                destination: services,
                exit: Exit::Via(self.underlay.gateway),
            },
            self.default_route(),
        ]
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn names_follow_kind() {
        assert_eq!(
            node_names("demo", 4),
            [
                "demo-control-plane",
                "demo-worker",
                "demo-worker2",
                "demo-worker3"
            ]
        );
        assert_eq!(node_netns("demo", "demo-worker"), "kinet-demo-demo-worker");
        assert_eq!(underlay_netns("demo"), "kinet-demo-underlay");
        assert_eq!(outside_netns("demo"), "kinet-demo-outside");
        assert_eq!(
            outside_ip(cidr("172.18.0.0/16")),
            "172.18.255.191".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn host_link_names_fit_in_15_bytes_and_stay_distinct() {
        assert_eq!(host_link_name("demo"), "kn-demo");
        assert_eq!(host_link_name("abcdefghijkl"), "kn-abcdefghijkl");
        let a = host_link_name("abcdefghijklm");
        let b = host_link_name("abcdefghijklmn");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("kn-abcdefg"));
        assert_ne!(a, b);
        assert_eq!(a, host_link_name("abcdefghijklm"), "stable");
        assert!(host_link_name(&"x".repeat(20)).len() <= 15);
    }

    #[test]
    fn subnet_pick_skips_overlaps_but_not_default_routes() {
        let all = candidate_subnets();
        assert_eq!(all.len(), 14);
        assert_eq!(all[0], cidr("172.18.0.0/16"));
        assert_eq!(all[13], cidr("172.31.0.0/16"));
        let routes = [cidr("0.0.0.0/0"), cidr("192.0.2.0/24")];
        assert_eq!(pick_subnet(&all, &routes), Some(cidr("172.18.0.0/16")));
        // Docker's network on 172.18, and a /24 inside 172.19.
        let routes = [cidr("172.18.0.0/16"), cidr("172.19.5.0/24")];
        assert_eq!(pick_subnet(&all, &routes), Some(cidr("172.20.0.0/16")));
        // A covering /12 takes them all.
        assert_eq!(pick_subnet(&all, &[cidr("172.16.0.0/12")]), None);
        assert_eq!(
            overlapping(&cidr("172.18.0.0/16"), &[cidr("172.18.3.4/32")]),
            Some(cidr("172.18.3.4/32"))
        );
    }

    #[test]
    fn plan_puts_the_gateway_on_one_and_nodes_from_two() {
        let p = Plan::new("demo", cidr("172.18.0.0/16"), 3);
        assert_eq!(p.underlay.gateway, Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(p.host_link, "kn-demo");
        let ips: Vec<_> = p.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["172.18.0.2", "172.18.0.3", "172.18.0.4"]);
        assert!(p.nodes[0].control_plane && !p.nodes[1].control_plane);
        assert_eq!(p.nodes[2].underlay_veth, "veth2");
        assert_eq!(p.node("demo-worker").unwrap().ip.to_string(), "172.18.0.3");
    }

    #[test]
    fn nodes_reach_beyond_the_cluster_only_with_egress() {
        let gateway = Ipv4Addr::new(172, 18, 0, 1);
        let isolated = Plan::new("demo", cidr("172.18.0.0/16"), 1);
        assert_eq!(
            isolated.node_routes(),
            [
                Route {
                    destination: cidr("10.96.0.0/12"),
                    exit: Exit::Via(gateway)
                },
                Route {
                    destination: cidr("0.0.0.0/0"),
                    exit: Exit::Unreachable
                },
            ]
        );
        let open = isolated.with_egress(true);
        assert_eq!(
            open.default_route(),
            Route {
                destination: cidr("0.0.0.0/0"),
                exit: Exit::Via(gateway)
            }
        );
        assert_eq!(open.node_routes()[1], open.default_route());
    }
}
