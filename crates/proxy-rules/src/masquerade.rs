//! flannel's `ipMasq` rules as a table of their own: pod traffic leaving the pod network
//! (to the host, the API server, the outside) takes the node's address, since nothing
//! beyond the nodes routes pod addresses back; traffic between pods, and multicast, is
//! never rewritten.

use std::net::Ipv4Addr;

use crate::model::{Action, BaseChain, Hook, Ipv4Cidr, Match, Rule, Ruleset};

/// Table `ip <table>` masquerading traffic from `pods` to anywhere outside it.
pub fn pod_masquerade(table: &str, pods: Ipv4Cidr) -> Ruleset {
    let multicast = Ipv4Cidr::new(Ipv4Addr::new(224, 0, 0, 0), 4).expect("a prefix of 4 is valid");
    let mut rs = Ruleset::empty(table, None);
    rs.add_base_chain(
        "postrouting",
        BaseChain {
            kind: "nat",
            hook: Hook::Postrouting,
            priority: "srcnat + 10",
        },
    );
    rs.add_rule(
        "postrouting",
        Rule::new(
            vec![Match::SaddrIn(pods), Match::DaddrIn(pods)],
            Action::Return,
        ),
    );
    rs.add_rule(
        "postrouting",
        Rule::new(
            vec![Match::SaddrIn(pods), Match::DaddrNotIn(multicast)],
            Action::Masquerade,
        ),
    );
    rs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_spares_pod_to_pod_traffic() {
        let text = pod_masquerade("podnet", "10.244.0.0/16".parse().unwrap()).to_nft();
        assert!(text.contains(
            "add chain ip podnet postrouting { type nat hook postrouting priority srcnat + 10 ; }\n"
        ));
        assert!(text.contains(
            "add rule ip podnet postrouting ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return\n"
        ));
        assert!(text.contains(
            "add rule ip podnet postrouting ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random\n"
        ));
    }
}
