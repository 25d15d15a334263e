//! The overlay's own packets left out of connection tracking. A VXLAN datagram between two
//! nodes needs no NAT and no policy, yet conntrack would look each one up, and keep an
//! `[UNREPLIED]` UDP entry per flow-hashed source port. Only the pods' packets inside it
//! need tracking, and they are tracked once decapsulated. Calico untracks its VXLAN the same
//! way (its raw-table rules); the chains sit at `raw` priority, before conntrack.

use std::net::Ipv4Addr;

use crate::model::{Action, BaseChain, Hook, Match, Proto, Rule, Ruleset};

/// Adds to `rs` the chains that untrack UDP to `port` sent from, or received at, `node`
/// (its underlay address).
pub fn untrack_overlay(rs: &mut Ruleset, node: Ipv4Addr, port: u16) {
    let chains = [
        ("raw-prerouting", Hook::Prerouting, Match::DaddrIs(node)),
        ("raw-output", Hook::Output, Match::SaddrIs(node)),
    ];
    for (name, hook, addr) in chains {
        rs.add_base_chain(
            name,
            BaseChain {
                kind: "filter",
                hook,
                priority: "raw",
            },
        );
        rs.add_rule(
            name,
            Rule::new(vec![addr, Match::Dport(Proto::Udp, port)], Action::Notrack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_own_vxlan_datagrams_are_untracked() {
        let mut rs = Ruleset::empty("podnet", None);
        untrack_overlay(&mut rs, Ipv4Addr::new(172, 18, 0, 2), 8472);
        let text = rs.to_nft();
        for line in [
            "add chain ip podnet raw-prerouting { type filter hook prerouting priority raw ; }\n",
            "add chain ip podnet raw-output { type filter hook output priority raw ; }\n",
            "add rule ip podnet raw-prerouting ip daddr 172.18.0.2 udp dport 8472 notrack\n",
            "add rule ip podnet raw-output ip saddr 172.18.0.2 udp dport 8472 notrack\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(text.matches("notrack").count(), 2, "{text}");
    }
}
