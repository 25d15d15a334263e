//! Services and EndpointSlices to per-service chains and map elements, with
//! kube-proxy's nftables semantics for traffic policies, affinity and
//! services without endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::groups::{Group, GroupIds, GROUPS_PER_MAP};
use crate::input::{categorize, Endpoint, ServicePort};
use crate::model::{
    Action, Ipv4Cidr, LookupKey, Map, MapEntry, MapKey, MapVerdict, Match, Owner, Proto, Rule,
    Ruleset, Set, SetKey, RANDOM_MODULUS,
};
use crate::names::{endpoint_base, hash_and_truncate, service_port_base};
use crate::skeleton::{
    CLUSTER_IPS, HAIRPIN, MARK_MASQ, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, REJECT_CHAIN,
    SERVICE_IPS, SERVICE_NODEPORTS,
};

/// Endpoint group ids for one Service's render: where they come from, the groups that
/// hold one, and the Service ports left without.
pub(crate) struct Groups<'a> {
    pub ids: &'a mut GroupIds,
    pub held: Vec<Group>,
    /// `ns/svc:port` of each port whose endpoints got no id (all 65,535 taken).
    pub refused: Vec<String>,
}

/// Names of one service port's chains.
struct Names {
    base: String,
    cluster: String,
    local: String,
    external: String,
    firewall: String,
}

impl Names {
    fn new(sp: &ServicePort) -> Names {
        let base = service_port_base(&sp.namespace, &sp.name, sp.proto.as_str(), &sp.port_name);
        let hashed = hash_and_truncate(&base);
        Names {
            cluster: format!("service-{hashed}"),
            local: format!("local-{hashed}"),
            external: format!("external-{hashed}"),
            firewall: format!("firewall-{hashed}"),
            base,
        }
    }

    /// (endpoint chain, affinity set) for one endpoint.
    fn endpoint(&self, ep: &Endpoint) -> (String, String) {
        let hashed = hash_and_truncate(&endpoint_base(&self.base, ep.ip, ep.port));
        (format!("endpoint-{hashed}"), format!("affinity-{hashed}"))
    }
}

fn add_element(
    rs: &mut Ruleset,
    map: &str,
    key: MapKey,
    verdict: MapVerdict,
    comment: Option<&str>,
) {
    if let Some(m) = rs.map_mut(map) {
        // First writer wins if two services claim the same address and port.
        m.elements.entry(key).or_insert(MapEntry {
            verdict,
            comment: comment.map(str::to_string),
        });
    }
}

fn new_chain(rs: &mut Ruleset, name: &str, sp: &ServicePort) {
    rs.chain_mut(name).owner = Some(Owner {
        namespace: sp.namespace.clone(),
        service: sp.name.clone(),
    });
}

fn push(rs: &mut Ruleset, chain: &str, rule: Rule) {
    rs.chain_mut(chain).rules.push(rule);
}

/// Renders one Service port into `rs`; its endpoint groups take their ids from `groups`.
pub(crate) fn render_port(
    rs: &mut Ruleset,
    sp: &ServicePort,
    eps: &[Endpoint],
    cluster_cidr: Option<Ipv4Cidr>,
    groups: &mut Groups<'_>,
) {
    let names = Names::new(sp);
    let cat = categorize(sp, eps);
    let display = sp.display();

    // Without affinity the chains depend on the Service alone, never on its endpoints: an
    // endpoint change (0→N and back included) is then a change of map and set elements,
    // which the kernel commits without re-validating the jump graph. A policy chain whose
    // endpoint map is empty matches nothing, and the filter hooks' no-endpoint verdict
    // (an element too) rejects or drops the packet. Affinity keeps a chain per endpoint.
    let endpoint_free = sp.affinity_secs.is_none();
    let uses_cluster_chain =
        sp.uses_cluster_endpoints() && (endpoint_free || !cat.cluster.is_empty());
    let uses_local_chain = sp.uses_local_endpoints() && (endpoint_free || !cat.local.is_empty());
    let policy = |local: bool| {
        if local {
            (&names.local, cat.has_any && !cat.local.is_empty())
        } else {
            (&names.cluster, cat.has_any)
        }
    };
    let (internal_chain, has_internal) = policy(sp.internal_local);
    let (external_policy_chain, has_external) = policy(sp.external_local);
    // Needed even without usable external endpoints: it short-circuits pod and
    // host traffic to the cluster-wide endpoints.
    let uses_external_chain = (endpoint_free || cat.has_any) && sp.externally_accessible();
    // loadBalancerSourceRanges: load-balancer traffic passes a firewall chain first.
    let uses_firewall_chain =
        uses_external_chain && !sp.lb_ips.is_empty() && !sp.source_ranges.is_empty();
    let lb_chain = if uses_firewall_chain {
        &names.firewall
    } else {
        &names.external
    };
    // No endpoints anywhere: reject so clients fail at once. Endpoints exist
    // but none usable by this policy on this node: drop, as kube-proxy does.
    let no_ep_verdict = if cat.has_any {
        MapVerdict::Drop
    } else {
        MapVerdict::Goto(REJECT_CHAIN.into())
    };

    // Endpoints either policy chain may pick.
    let reachable: BTreeSet<usize> = (if uses_cluster_chain {
        &cat.cluster[..]
    } else {
        &[]
    })
    .iter()
    .chain(if uses_local_chain {
        &cat.local[..]
    } else {
        &[]
    })
    .copied()
    .collect();

    let chain_exists = |local: bool| {
        if local {
            uses_local_chain
        } else {
            uses_cluster_chain
        }
    };
    if uses_cluster_chain {
        new_chain(rs, &names.cluster, sp);
    }
    if uses_local_chain {
        new_chain(rs, &names.local, sp);
    }
    if uses_external_chain {
        new_chain(rs, &names.external, sp);
    }
    if uses_firewall_chain {
        new_chain(rs, &names.firewall, sp);
    }

    // Capture the ClusterIP.
    if let Some(s) = rs.set_mut(CLUSTER_IPS) {
        s.elements.insert(sp.cluster_ip);
    }
    let cip_key = MapKey::Addr(sp.cluster_ip, sp.proto, sp.port);
    if chain_exists(sp.internal_local) {
        add_element(
            rs,
            SERVICE_IPS,
            cip_key,
            MapVerdict::Goto(internal_chain.clone()),
            None,
        );
        if let Some(cidr) = cluster_cidr {
            // Off-cluster clients reaching a ClusterIP (e.g. via a route to
            // the service range) may be sent to another node: masquerade.
            push(
                rs,
                internal_chain,
                Rule::new(
                    vec![Match::DaddrIs(sp.cluster_ip), Match::SaddrNotIn(cidr)],
                    Action::Jump(MARK_MASQ.into()),
                ),
            );
        }
    }
    if !has_internal {
        add_element(
            rs,
            NO_ENDPOINT_SERVICES,
            cip_key,
            no_ep_verdict.clone(),
            Some(&display),
        );
    }

    // Capture external IPs and load-balancer IPs.
    let external: Vec<(Ipv4Addr, &String)> = (sp.external_ips.iter())
        .map(|ip| (*ip, &names.external))
        .chain(sp.lb_ips.iter().map(|ip| (*ip, lb_chain)))
        .collect();
    for (ip, chain) in external {
        let key = MapKey::Addr(ip, sp.proto, sp.port);
        if uses_external_chain {
            add_element(rs, SERVICE_IPS, key, MapVerdict::Goto(chain.clone()), None);
        }
        if !has_external {
            add_element(
                rs,
                NO_ENDPOINT_SERVICES,
                key,
                no_ep_verdict.clone(),
                Some(&display),
            );
        }
    }
    // Capture the NodePort.
    if let Some(np) = sp.node_port {
        let key = MapKey::ProtoPort(sp.proto, np);
        if uses_external_chain {
            add_element(
                rs,
                SERVICE_NODEPORTS,
                key,
                MapVerdict::Goto(names.external.clone()),
                None,
            );
        }
        if !has_external {
            add_element(
                rs,
                NO_ENDPOINT_NODEPORTS,
                key,
                no_ep_verdict.clone(),
                Some(&display),
            );
        }
    }

    if uses_firewall_chain {
        firewall_rules(rs, sp, &names);
    }
    if uses_external_chain {
        external_rules(rs, sp, &names, cluster_cidr);
        if chain_exists(sp.external_local) {
            push(
                rs,
                &names.external,
                Rule::always(Action::Goto(external_policy_chain.clone())),
            );
        }
    }

    // Hairpin: a pod reaching itself through the service would otherwise get a reply from
    // its own address and drop it; postrouting masquerades such packets, found in a set.
    if let Some(s) = rs.set_mut(HAIRPIN) {
        s.elements.extend(reachable.iter().map(|i| eps[*i].ip));
    }
    let Some(secs) = sp.affinity_secs else {
        // Endpoints in a map keyed by a random number: any endpoint change is a change of
        // map elements, which the kernel commits without re-validating the jump graph.
        let mut pick = |chain: &str, local: bool, chosen: &[usize]| {
            dnat_random(rs, sp, chain, (sp.key(), local), chosen, eps, groups);
        };
        if uses_cluster_chain {
            pick(&names.cluster, false, &cat.cluster);
        }
        if uses_local_chain {
            pick(&names.local, true, &cat.local);
        }
        return;
    };
    // ClientIP affinity remembers the client per endpoint: a chain and a set per endpoint.
    let ep_names: Vec<Option<(String, String)>> = (0..eps.len())
        .map(|i| reachable.contains(&i).then(|| names.endpoint(&eps[i])))
        .collect();
    for (_, set) in ep_names.iter().flatten() {
        rs.add_set(Set {
            name: set.clone(),
            key: SetKey::Addr,
            comment: None,
            timeout_secs: Some(secs),
            elements: BTreeSet::new(),
        });
    }
    if uses_cluster_chain {
        dispatch_rules(rs, &names.cluster, &cat.cluster, &ep_names);
    }
    if uses_local_chain {
        dispatch_rules(rs, &names.local, &cat.local, &ep_names);
    }
    for (ep, name) in eps.iter().zip(&ep_names) {
        let Some((chain, set)) = name else { continue };
        new_chain(rs, chain, sp);
        push(rs, chain, Rule::always(Action::UpdateSaddr(set.clone())));
        push(
            rs,
            chain,
            Rule::new(
                vec![Match::L4Proto(sp.proto)],
                Action::Dnat(SocketAddrV4::new(ep.ip, ep.port)),
            ),
        );
    }
}

/// The endpoints map holding the group at `offset` of a `p` port: `endpoints-<p>-<k>`, the
/// `k`th run of `GROUPS_PER_MAP` group ids.
fn endpoints_map(p: Proto, offset: u32) -> Map {
    let k = offset / RANDOM_MODULUS / GROUPS_PER_MAP;
    let (first, last) = (k * GROUPS_PER_MAP, k * GROUPS_PER_MAP + GROUPS_PER_MAP - 1);
    Map {
        name: format!("endpoints-{p}-{k}"),
        key: LookupKey::Random(p),
        comment: Some(format!("endpoint groups {first}-{last}")),
        elements: BTreeMap::new(),
    }
}

/// `chain` DNATs to one of the `chosen` endpoints, `group`, through an endpoints map shared
/// with other groups: the group owns `RANDOM_MODULUS` keys from its offset, each endpoint an
/// equal range of them (the first ranges one wider when the modulus does not divide evenly).
/// A port whose group gets no id has no DNAT rule: what is left addressed to its ClusterIP is
/// rejected by the filter hooks, and the port is reported in `groups.refused`.
fn dnat_random(
    rs: &mut Ruleset,
    sp: &ServicePort,
    chain: &str,
    group: Group,
    chosen: &[usize],
    eps: &[Endpoint],
    groups: &mut Groups<'_>,
) {
    let Some(offset) = groups.ids.offset(&group) else {
        groups.refused.push(sp.display());
        return;
    };
    groups.held.push(group);
    let map = endpoints_map(sp.proto, offset);
    let name = map.name.clone();
    rs.add_map(map);
    for ((lo, hi), i) in weight_ranges(chosen.len()).zip(chosen) {
        let ep = &eps[*i];
        add_element(
            rs,
            &name,
            MapKey::Range(offset + lo, offset + hi),
            MapVerdict::Endpoint(SocketAddrV4::new(ep.ip, ep.port)),
            None,
        );
    }
    let action = Action::DnatRandom { map: name, offset };
    push(rs, chain, Rule::new(vec![Match::L4Proto(sp.proto)], action));
}

/// `n` adjacent inclusive ranges covering `0..RANDOM_MODULUS`, as equal as can be.
pub(crate) fn weight_ranges(n: usize) -> impl Iterator<Item = (u32, u32)> {
    let n = n.max(1) as u32;
    let (width, extra) = (RANDOM_MODULUS / n, RANDOM_MODULUS % n);
    (0..n).scan(0u32, move |lo, i| {
        let len = width + u32::from(i < extra);
        let range = (*lo, *lo + len - 1);
        *lo += len;
        Some(range)
    })
}

/// kube-proxy's load-balancer firewall: clients in loadBalancerSourceRanges go on to the
/// external chain, the rest are dropped. When a range holds this node's address, the
/// load-balancer addresses count as sources too: the node's own requests to an address it
/// holds leave with that address as their source.
fn firewall_rules(rs: &mut Ruleset, sp: &ServicePort, names: &Names) {
    let pass = |m| Rule::new(vec![m], Action::Goto(names.external.clone()));
    for cidr in &sp.source_ranges {
        push(rs, &names.firewall, pass(Match::SaddrIn(*cidr)));
    }
    let from_node =
        (sp.source_ranges.iter()).any(|cidr| rs.local_addrs.iter().any(|ip| cidr.contains(*ip)));
    if from_node {
        for ip in &sp.lb_ips {
            push(rs, &names.firewall, pass(Match::SaddrIs(*ip)));
        }
    }
    push(
        rs,
        &names.firewall,
        Rule::always(Action::Drop).with_comment("not in loadBalancerSourceRanges"),
    );
}

/// The external chain's special cases, before it hands over to the policy chain.
fn external_rules(
    rs: &mut Ruleset,
    sp: &ServicePort,
    names: &Names,
    cluster_cidr: Option<Ipv4Cidr>,
) {
    let ext = &names.external;
    if !sp.external_local {
        // Cluster policy may forward to another node: masquerade so replies
        // come back through this node.
        push(rs, ext, Rule::always(Action::Jump(MARK_MASQ.into())));
        return;
    }
    // Local policy keeps the client address. Pod traffic to an external
    // address is treated as if it went out to the load balancer and back.
    if let Some(cidr) = cluster_cidr {
        push(
            rs,
            ext,
            Rule::new(
                vec![Match::SaddrIn(cidr)],
                Action::Goto(names.cluster.clone()),
            )
            .with_comment("short-circuit pod traffic"),
        );
    }
    // The node's own traffic has a node address as source: it must be
    // masqueraded, and may use any endpoint.
    push(
        rs,
        ext,
        Rule::new(vec![Match::FibSaddrLocal], Action::Jump(MARK_MASQ.into()))
            .with_comment("masquerade local traffic"),
    );
    push(
        rs,
        ext,
        Rule::new(
            vec![Match::FibSaddrLocal],
            Action::Goto(names.cluster.clone()),
        )
        .with_comment("short-circuit local traffic"),
    );
}

/// Affinity lookups, then random choice among `chosen` endpoints' chains.
fn dispatch_rules(
    rs: &mut Ruleset,
    chain: &str,
    chosen: &[usize],
    ep_names: &[Option<(String, String)>],
) {
    let picked: Vec<&(String, String)> = chosen
        .iter()
        .filter_map(|i| ep_names[*i].as_ref())
        .collect();
    for (ep_chain, set) in &picked {
        push(
            rs,
            chain,
            Rule::new(
                vec![Match::SaddrInSet(set.clone())],
                Action::Goto(ep_chain.clone()),
            ),
        );
    }
    let targets = picked.iter().map(|(c, _)| c.clone()).collect();
    push(rs, chain, Rule::always(Action::NumgenGoto(targets)));
}

#[cfg(test)]
mod tests {
    use super::weight_ranges;
    use crate::model::RANDOM_MODULUS;

    #[test]
    fn ranges_cover_the_modulus_evenly() {
        for n in [1, 2, 3, 7, 10, 1000] {
            let ranges: Vec<(u32, u32)> = weight_ranges(n).collect();
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[n - 1].1, RANDOM_MODULUS - 1);
            assert!(ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1));
            let widths: Vec<u32> = ranges.iter().map(|(lo, hi)| hi - lo + 1).collect();
            assert!(widths.iter().max().unwrap() - widths.iter().min().unwrap() <= 1);
        }
    }
}
