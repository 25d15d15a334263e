//! Services and EndpointSlices to kube-proxy's iptables chains, with the same traffic
//! policy, affinity and no-endpoint semantics as the nftables renderer (both read
//! `kinet-proxy-rules`' service model). Rule text follows `pkg/proxy/iptables/proxier.go`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_rules::{
    categorize, ports_with_endpoints, Endpoint, Ipv4Cidr, NodeInfo, ProxyConfig, ServicePort,
};

use crate::names::{endpoint_chain, service_port_name, PortChains};
use crate::rule::{Match, Rule, Target};
use crate::tables::{
    Table, Tables, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_MARK_MASQ, KUBE_NODEPORTS,
    KUBE_POSTROUTING, KUBE_PROXY_FIREWALL, KUBE_SERVICES,
};

/// The node's desired kube-proxy chains. Pure: the same inputs in any order give the
/// same tables.
pub fn render<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &NodeInfo,
    config: &ProxyConfig,
) -> Tables {
    let mask = config.masquerade_mark;
    let mut t = skeleton(node, mask);
    let cluster_cidr: Option<Ipv4Cidr> = config.cluster_cidr.parse().ok();
    for (sp, eps) in ports_with_endpoints(services, slices, &node.name) {
        render_port(&mut t, &sp, &eps, cluster_cidr);
    }
    for ip in &node.node_ips {
        t.push(
            Table::Nat,
            KUBE_SERVICES,
            Rule::new(
                Some(
                    "kubernetes service nodeports; NOTE: this must be the last rule in this chain"
                        .into(),
                ),
                vec![Match::Dst(*ip)],
                Target::Jump(KUBE_NODEPORTS.into()),
            ),
        );
    }
    t
}

/// The chains every node has: the top-level dispatch chains and masquerading by mark.
fn skeleton(node: &NodeInfo, mask: u32) -> Tables {
    let mut t = Tables {
        local_addrs: node.node_ips.clone(),
        ..Tables::default()
    };
    for chain in [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_PROXY_FIREWALL] {
        t.chain_mut(Table::Filter, chain);
    }
    for chain in [KUBE_SERVICES, KUBE_NODEPORTS] {
        t.chain_mut(Table::Nat, chain);
    }
    let rule = |comment: Option<&str>, matches, target| {
        Rule::new(comment.map(String::from), matches, target)
    };
    t.push(
        Table::Filter,
        KUBE_FORWARD,
        rule(
            Some("kubernetes forwarding rules"),
            vec![Match::Mark(mask)],
            Target::Accept,
        ),
    );
    t.push(
        Table::Filter,
        KUBE_FORWARD,
        rule(
            Some("kubernetes forwarding conntrack rule"),
            vec![Match::CtEstablished],
            Target::Accept,
        ),
    );
    t.push(
        Table::Nat,
        KUBE_MARK_MASQ,
        rule(None, Vec::new(), Target::MarkOr(mask)),
    );
    t.push(
        Table::Nat,
        KUBE_POSTROUTING,
        rule(None, vec![Match::NotMark(mask)], Target::Return),
    );
    // Clear the mark so a packet re-traversing the stack is not masqueraded again.
    t.push(
        Table::Nat,
        KUBE_POSTROUTING,
        rule(None, Vec::new(), Target::MarkXor(mask)),
    );
    t.push(
        Table::Nat,
        KUBE_POSTROUTING,
        rule(
            Some("kubernetes service traffic requiring SNAT"),
            Vec::new(),
            Target::Masquerade,
        ),
    );
    t
}

fn jump(to: &str) -> Target {
    Target::Jump(to.to_string())
}

/// `-m <proto> -p <proto> [-d ip] --dport port`
fn port_matches(sp: &ServicePort, dst: Option<Ipv4Addr>, port: u16) -> Vec<Match> {
    let mut m = vec![Match::Proto(sp.proto)];
    m.extend(dst.map(Match::Dst));
    m.push(Match::Dport(port));
    m
}

fn render_port(t: &mut Tables, sp: &ServicePort, eps: &[Endpoint], cluster_cidr: Option<Ipv4Cidr>) {
    let chains = PortChains::new(sp);
    let name = service_port_name(sp);
    let cat = categorize(sp, eps);

    let uses_cluster_chain = !cat.cluster.is_empty() && sp.uses_cluster_endpoints();
    let uses_local_chain = !cat.local.is_empty() && sp.uses_local_endpoints();
    let policy = |local: bool| {
        if local {
            (&chains.local, cat.has_any && !cat.local.is_empty())
        } else {
            (&chains.cluster, cat.has_any)
        }
    };
    let (internal_chain, has_internal) = policy(sp.internal_local);
    let (external_policy_chain, has_external) = policy(sp.external_local);
    let uses_external_chain = cat.has_any && sp.externally_accessible();
    // loadBalancerSourceRanges: load-balancer traffic passes KUBE-FW- first; what it lets
    // through is DNATed, so KUBE-PROXY-FIREWALL drops what is still addressed to the LB.
    let uses_firewall_chain =
        uses_external_chain && !sp.lb_ips.is_empty() && !sp.source_ranges.is_empty();
    // No endpoints anywhere: reject so clients fail at once. Endpoints exist but none
    // usable by this policy on this node: drop, as kube-proxy does.
    let (refuse, refuse_comment) = if cat.has_any {
        (Target::Drop, format!("{name} has no local endpoints"))
    } else {
        (Target::Reject, format!("{name} has no endpoints"))
    };
    let refusal = |matches| Rule::new(Some(refuse_comment.clone()), matches, refuse.clone());

    for (used, chain) in [
        (uses_cluster_chain, &chains.cluster),
        (uses_local_chain, &chains.local),
        (uses_external_chain, &chains.external),
        (uses_firewall_chain, &chains.firewall),
    ] {
        if used {
            t.chain_mut(Table::Nat, chain);
        }
    }

    // The ClusterIP.
    let cluster_ip = port_matches(sp, Some(sp.cluster_ip), sp.port);
    let cluster_comment = Some(format!("{name} cluster IP"));
    if has_internal {
        t.push(
            Table::Nat,
            KUBE_SERVICES,
            Rule::new(
                cluster_comment.clone(),
                cluster_ip.clone(),
                jump(internal_chain),
            ),
        );
        if let Some(cidr) = cluster_cidr {
            // Off-cluster clients of a ClusterIP may be sent to another node: masquerade.
            let mut m = cluster_ip;
            m.push(Match::SrcNotIn(cidr));
            t.push(
                Table::Nat,
                internal_chain,
                Rule::new(cluster_comment, m, jump(KUBE_MARK_MASQ)),
            );
        }
    } else {
        t.push(Table::Filter, KUBE_SERVICES, refusal(cluster_ip));
    }

    // External IPs, load-balancer IPs and the NodePort.
    let lb_chain = if uses_firewall_chain {
        &chains.firewall
    } else {
        &chains.external
    };
    let external = (sp.external_ips.iter()).map(|ip| (*ip, "external IP", &chains.external));
    let lb = sp
        .lb_ips
        .iter()
        .map(|ip| (*ip, "loadbalancer IP", lb_chain));
    for (ip, what, to) in external.chain(lb) {
        let m = port_matches(sp, Some(ip), sp.port);
        if cat.has_any {
            t.push(
                Table::Nat,
                KUBE_SERVICES,
                Rule::new(Some(format!("{name} {what}")), m.clone(), jump(to)),
            );
        }
        if uses_firewall_chain && to == &chains.firewall {
            let comment = format!("{name} traffic not accepted by {}", chains.firewall);
            t.push(
                Table::Filter,
                KUBE_PROXY_FIREWALL,
                Rule::new(Some(comment), m.clone(), Target::Drop),
            );
        }
        if !has_external {
            t.push(Table::Filter, KUBE_EXTERNAL_SERVICES, refusal(m));
        }
    }
    if let Some(np) = sp.node_port {
        if cat.has_any {
            t.push(
                Table::Nat,
                KUBE_NODEPORTS,
                Rule::new(
                    Some(name.clone()),
                    port_matches(sp, None, np),
                    jump(&chains.external),
                ),
            );
        }
        if !has_external {
            let mut m = vec![Match::DstLocal];
            m.extend(port_matches(sp, None, np));
            t.push(Table::Filter, KUBE_EXTERNAL_SERVICES, refusal(m));
        }
    }

    if uses_firewall_chain {
        firewall_rules(t, sp, &name, &chains);
    }
    if uses_external_chain {
        external_rules(t, sp, &name, &chains, cluster_cidr);
        if has_external {
            t.push(
                Table::Nat,
                &chains.external,
                Rule::new(None, Vec::new(), jump(external_policy_chain)),
            );
        }
    }

    let reachable: BTreeSet<usize> = uses_cluster_chain
        .then_some(&cat.cluster)
        .into_iter()
        .chain(uses_local_chain.then_some(&cat.local))
        .flatten()
        .copied()
        .collect();
    if uses_cluster_chain {
        dispatch_rules(t, sp, &name, &chains.cluster, &cat.cluster, eps);
    }
    if uses_local_chain {
        dispatch_rules(t, sp, &name, &chains.local, &cat.local, eps);
    }
    for i in reachable {
        endpoint_rules(t, sp, &name, &eps[i]);
    }
}

/// `KUBE-FW-`: clients in loadBalancerSourceRanges go on to `KUBE-EXT-`; the rest fall
/// through undNATed. When a range holds this node's address, the load-balancer addresses
/// count as sources too (the node's own requests to an address it holds).
fn firewall_rules(t: &mut Tables, sp: &ServicePort, name: &str, chains: &PortChains) {
    let comment = Some(format!("{name} loadbalancer IP"));
    let pass = |m| Rule::new(comment.clone(), vec![m], jump(&chains.external));
    for cidr in &sp.source_ranges {
        t.push(Table::Nat, &chains.firewall, pass(Match::SrcIn(*cidr)));
    }
    let from_node =
        (sp.source_ranges.iter()).any(|cidr| t.local_addrs.iter().any(|ip| cidr.contains(*ip)));
    if from_node {
        for ip in &sp.lb_ips {
            t.push(Table::Nat, &chains.firewall, pass(Match::Src(*ip)));
        }
    }
}

/// The external chain's special cases, before it hands over to the policy chain.
fn external_rules(
    t: &mut Tables,
    sp: &ServicePort,
    name: &str,
    chains: &PortChains,
    cluster_cidr: Option<Ipv4Cidr>,
) {
    let ext = &chains.external;
    let comment = |what: &str| Some(format!("{what} {name} external destinations"));
    if !sp.external_local {
        // Cluster policy may forward to another node: masquerade so replies come back.
        t.push(
            Table::Nat,
            ext,
            Rule::new(
                comment("masquerade traffic for"),
                Vec::new(),
                jump(KUBE_MARK_MASQ),
            ),
        );
        return;
    }
    // Local policy keeps the client address. Pod traffic to an external address is
    // treated as if it went out to the load balancer and back.
    if let Some(cidr) = cluster_cidr {
        t.push(
            Table::Nat,
            ext,
            Rule::new(
                comment("pod traffic for"),
                vec![Match::SrcIn(cidr)],
                jump(&chains.cluster),
            ),
        );
    }
    // The node's own traffic has a node address as source: masquerade it, and let it use
    // any endpoint.
    t.push(
        Table::Nat,
        ext,
        Rule::new(
            comment("masquerade LOCAL traffic for"),
            vec![Match::SrcLocal],
            jump(KUBE_MARK_MASQ),
        ),
    );
    t.push(
        Table::Nat,
        ext,
        Rule::new(
            comment("route LOCAL traffic for"),
            vec![Match::SrcLocal],
            jump(&chains.cluster),
        ),
    );
}

/// Affinity checks, then one rule per endpoint taking 1/n, 1/(n-1), ... of what is left.
fn dispatch_rules(
    t: &mut Tables,
    sp: &ServicePort,
    name: &str,
    chain: &str,
    chosen: &[usize],
    eps: &[Endpoint],
) {
    let targets: Vec<(String, String)> = chosen
        .iter()
        .map(|i| {
            let to = SocketAddrV4::new(eps[*i].ip, eps[*i].port);
            (format!("{name} -> {to}"), endpoint_chain(sp, to))
        })
        .collect();
    if let Some(seconds) = sp.affinity_secs {
        for (comment, sep) in &targets {
            let check = Match::RecentCheck {
                list: sep.clone(),
                seconds,
            };
            t.push(
                Table::Nat,
                chain,
                Rule::new(Some(comment.clone()), vec![check], jump(sep)),
            );
        }
    }
    let n = targets.len();
    for (i, (comment, sep)) in targets.into_iter().enumerate() {
        let matches = if i + 1 < n {
            vec![Match::OneIn(n - i)]
        } else {
            Vec::new()
        };
        t.push(
            Table::Nat,
            chain,
            Rule::new(Some(comment), matches, jump(&sep)),
        );
    }
}

fn endpoint_rules(t: &mut Tables, sp: &ServicePort, name: &str, ep: &Endpoint) {
    let to = SocketAddrV4::new(ep.ip, ep.port);
    let sep = endpoint_chain(sp, to);
    // Hairpin: a pod reaching itself through the Service would otherwise get a reply
    // from its own address and drop it.
    t.push(
        Table::Nat,
        &sep,
        Rule::new(
            Some(name.to_string()),
            vec![Match::Src(ep.ip)],
            jump(KUBE_MARK_MASQ),
        ),
    );
    let mut m = Vec::new();
    if sp.affinity_secs.is_some() {
        m.push(Match::RecentSet(sep.clone()));
    }
    m.push(Match::Proto(sp.proto));
    t.push(
        Table::Nat,
        &sep,
        Rule::new(Some(name.to_string()), m, Target::Dnat(to)),
    );
}
