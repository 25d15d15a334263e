//! The fixed part of the table: base chains hooked into netfilter, the
//! dispatch chains they jump to, and the (initially empty) maps and sets the
//! per-service part fills. Layout and names follow kube-proxy's nftables mode.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{NodeInfo, ProxyConfig};
use crate::model::{Action, BaseChain, Hook, LookupKey, Map, Match, Rule, Ruleset, Set, SetKey};
use crate::Proto;

pub const SERVICES: &str = "services";
pub const MARK_MASQ: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";

pub const CLUSTER_IPS: &str = "cluster-ips";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const HAIRPIN: &str = "hairpin";

/// Base chains: (name, type, hook, priority). NAT at dstnat (-100) / srcnat
/// (100); filtering at 0, i.e. after DNAT, so a packet still addressed to a
/// service IP in the filter hooks is one no service chain took.
const BASE_CHAINS: [(&str, &str, Hook, &str); 6] = [
    ("filter-forward", "filter", Hook::Forward, "0"),
    ("filter-input", "filter", Hook::Input, "0"),
    ("filter-output", "filter", Hook::Output, "0"),
    ("nat-output", "nat", Hook::Output, "-100"),
    ("nat-postrouting", "nat", Hook::Postrouting, "100"),
    ("nat-prerouting", "nat", Hook::Prerouting, "-100"),
];

fn map(name: &str, key: LookupKey, comment: &str) -> Map {
    Map {
        name: name.into(),
        key,
        comment: Some(comment.into()),
        elements: BTreeMap::new(),
    }
}

fn add(rs: &mut Ruleset, chain: &str, rule: Rule) {
    rs.chain_mut(chain).rules.push(rule);
}

fn jump_if_new(target: &str) -> Rule {
    Rule::new(vec![Match::CtStateNew], Action::Jump(target.into()))
}

/// A ruleset holding only the fixed skeleton.
pub fn skeleton(node: &NodeInfo, config: &ProxyConfig) -> Ruleset {
    let mut rs = Ruleset::new(&config.table, node.node_ips.clone());
    let mark = config.masquerade_mark;

    rs.add_set(Set {
        name: CLUSTER_IPS.into(),
        key: SetKey::Addr,
        comment: Some("Active ClusterIPs".into()),
        timeout_secs: None,
        elements: BTreeSet::new(),
    });
    rs.add_set(Set {
        name: NODEPORT_IPS.into(),
        key: SetKey::Addr,
        comment: Some("IPs that accept NodePort traffic".into()),
        timeout_secs: None,
        elements: node.node_ips.iter().copied().collect(),
    });
    rs.add_set(Set {
        name: HAIRPIN.into(),
        key: SetKey::SelfPair,
        comment: Some("Endpoints that reach themselves through a Service".into()),
        timeout_secs: None,
        elements: BTreeSet::new(),
    });
    rs.add_map(map(
        NO_ENDPOINT_NODEPORTS,
        LookupKey::ProtoPort,
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ));
    rs.add_map(map(
        NO_ENDPOINT_SERVICES,
        LookupKey::DaddrProtoPort,
        "vmap to drop or reject packets to services with no endpoints",
    ));
    rs.add_map(map(
        SERVICE_IPS,
        LookupKey::DaddrProtoPort,
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ));
    rs.add_map(map(
        SERVICE_NODEPORTS,
        LookupKey::ProtoPort,
        "NodePort traffic",
    ));

    for (name, kind, hook, priority) in BASE_CHAINS {
        rs.chain_mut(name).base = Some(BaseChain {
            kind,
            hook,
            priority,
        });
    }

    add(
        &mut rs,
        "filter-forward",
        jump_if_new(SERVICE_ENDPOINTS_CHECK),
    );
    add(&mut rs, "filter-forward", jump_if_new(CLUSTER_IPS_CHECK));
    add(
        &mut rs,
        "filter-input",
        jump_if_new(NODEPORT_ENDPOINTS_CHECK),
    );
    add(
        &mut rs,
        "filter-input",
        jump_if_new(SERVICE_ENDPOINTS_CHECK),
    );
    add(
        &mut rs,
        "filter-output",
        jump_if_new(SERVICE_ENDPOINTS_CHECK),
    );
    add(&mut rs, "filter-output", jump_if_new(CLUSTER_IPS_CHECK));
    add(
        &mut rs,
        "nat-output",
        Rule::always(Action::Jump(SERVICES.into())),
    );
    add(
        &mut rs,
        "nat-postrouting",
        Rule::always(Action::Jump(MASQUERADING.into())),
    );
    add(
        &mut rs,
        "nat-prerouting",
        Rule::always(Action::Jump(SERVICES.into())),
    );

    add(
        &mut rs,
        CLUSTER_IPS_CHECK,
        Rule::new(vec![Match::DaddrInSet(CLUSTER_IPS.into())], Action::Reject)
            .with_comment("Reject traffic to invalid ports of ClusterIPs"),
    );
    if let Some(cidr) = config.service_cidr() {
        add(
            &mut rs,
            CLUSTER_IPS_CHECK,
            Rule::new(vec![Match::DaddrIn(cidr)], Action::Drop)
                .with_comment("Drop traffic to unallocated ClusterIPs"),
        );
    }
    add(&mut rs, MARK_MASQ, Rule::always(Action::MarkOr(mark)));
    add(
        &mut rs,
        MASQUERADING,
        Rule::new(
            vec![Match::SaddrDaddrInSet(HAIRPIN.into())],
            Action::Jump(MARK_MASQ.into()),
        )
        .with_comment("hairpin"),
    );
    add(
        &mut rs,
        MASQUERADING,
        Rule::new(vec![Match::MarkClear(mark)], Action::Return),
    );
    // Clear the bit so a packet re-entering the stack is not masqueraded twice.
    add(&mut rs, MASQUERADING, Rule::always(Action::MarkXor(mark)));
    add(&mut rs, MASQUERADING, Rule::always(Action::Masquerade));
    add(
        &mut rs,
        NODEPORT_ENDPOINTS_CHECK,
        Rule::new(
            vec![Match::DaddrInSet(NODEPORT_IPS.into())],
            Action::Vmap {
                key: LookupKey::ProtoPort,
                map: NO_ENDPOINT_NODEPORTS.into(),
            },
        ),
    );
    add(
        &mut rs,
        REJECT_CHAIN,
        Rule::new(vec![Match::L4Proto(Proto::Tcp)], Action::RejectTcpReset),
    );
    add(&mut rs, REJECT_CHAIN, Rule::always(Action::Reject));
    add(
        &mut rs,
        SERVICE_ENDPOINTS_CHECK,
        Rule::always(Action::Vmap {
            key: LookupKey::DaddrProtoPort,
            map: NO_ENDPOINT_SERVICES.into(),
        }),
    );
    // One hash lookup per packet, however many services exist.
    add(
        &mut rs,
        SERVICES,
        Rule::always(Action::Vmap {
            key: LookupKey::DaddrProtoPort,
            map: SERVICE_IPS.into(),
        }),
    );
    add(
        &mut rs,
        SERVICES,
        Rule::new(
            vec![Match::DaddrInSet(NODEPORT_IPS.into())],
            Action::Vmap {
                key: LookupKey::ProtoPort,
                map: SERVICE_NODEPORTS.into(),
            },
        ),
    );
    rs
}
