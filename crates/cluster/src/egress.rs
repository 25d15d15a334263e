//! Egress: what a cluster's pods and nodes may reach beyond it.
//!
//! Isolated by default. Node and outside namespaces get an `unreachable` default route
//! ([`Plan::default_route`]): a packet for an address outside the cluster (its underlay, pod and
//! Service ranges) is dropped in the namespace it came from and the sender is told at once
//! (ICMP host unreachable, `EHOSTUNREACH`). The host never sees it, so its
//! `net.ipv4.ip_forward` does not matter. Routes rather than a firewall: no rule to load
//! before the first packet, none a restarted agent or proxy could drop for a moment.
//!
//! `kinet up --egress` (recorded at creation) routes it via the host link instead, and the
//! host masquerades what leaves the underlay, as Docker does for kind's network
//! (`-s <net> ! -o <bridge> -j MASQUERADE`), in an nftables table of the cluster's own
//! ([`host_table`]) that `down` deletes. kinet never changes the host's sysctls: the host
//! forwards only if `net.ipv4.ip_forward` is on, and `up` says so when it is off
//! ([`forwarding_note`]). Without `--upstream-dns`, cluster DNS then forwards other names to
//! the host's resolvers ([`host_resolvers`]), as kind's does.

use std::net::{Ipv4Addr, SocketAddr};

use crate::nodes::Plan;

/// The host's IPv4 forwarding switch, read (never written) for [`forwarding_note`].
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The host's nftables table (family `ip`) of an `--egress` cluster.
pub fn host_table(cluster: &str) -> String {
    format!("kinet-{cluster}-egress")
}

/// The host table as one atomic `nft -f` load: declared, emptied, filled. Pod addresses
/// never reach the host (each node masquerades them), so the underlay is the only source.
pub fn host_ruleset(plan: &Plan) -> String {
    let table = host_table(&plan.cluster);
    format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {} oifname != \"{}\" masquerade\n\
         \t}}\n\
         }}\n",
        plan.underlay.cidr, plan.host_link
    )
}

/// Deletes the host table, also when it is already gone.
pub fn host_ruleset_removal(cluster: &str) -> String {
    let table = host_table(cluster);
    format!("table ip {table}\ndelete table ip {table}\n")
}

/// Where the host's resolvers are listed: the usual file, then systemd-resolved's list of
/// its upstreams for when the first names only its local stub (Docker reads them so too).
pub const RESOLV_CONFS: [&str; 2] = ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];

/// The upstreams an `--egress` cluster's DNS forwards to when `--upstream-dns` is not given,
/// as kind's CoreDNS forwards to its node's resolvers: the `nameserver`s of `resolv_conf`
/// that a pod can reach through the host. Loopback addresses (a local stub such as
/// systemd-resolved's 127.0.0.53) are the host's own and IPv6 ones have no route from a
/// pod, so both are left out.
pub fn host_resolvers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["nameserver", ip, ..] => ip.parse::<Ipv4Addr>().ok(),
                _ => None,
            },
        )
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::from((ip, 53)))
        .collect()
}

/// What `up --egress` tells the user, given `/proc/sys/net/ipv4/ip_forward`.
pub fn forwarding_note(ip_forward: &str) -> Option<&'static str> {
    (ip_forward.trim() == "0").then_some(
        "net.ipv4.ip_forward is 0 on this host, so pod traffic stops at the host; kinet \
         leaves it as it is: turn it on with `sysctl -w net.ipv4.ip_forward=1`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_masquerades_what_leaves_the_underlay_elsewhere_than_its_link() {
        assert_eq!(
            host_ruleset(&Plan::new("demo", "172.18.0.0/16".parse().unwrap(), 1).with_egress(true)),
            "table ip kinet-demo-egress\n\
             delete table ip kinet-demo-egress\n\
             table ip kinet-demo-egress {\n\
             \tchain postrouting {\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tip saddr 172.18.0.0/16 oifname != \"kn-demo\" masquerade\n\
             \t}\n\
             }\n"
        );
        assert_eq!(
            host_ruleset_removal("demo"),
            "table ip kinet-demo-egress\ndelete table ip kinet-demo-egress\n"
        );
    }

    #[test]
    fn dns_forwards_to_the_host_resolvers_a_pod_can_reach() {
        let conf = "# generated\nsearch example.com\nnameserver 192.0.2.53\n\
                    nameserver 127.0.0.53\nnameserver 2001:db8::53\n  nameserver 198.51.100.1 # x\n\
                    options edns0\n";
        assert_eq!(
            host_resolvers(conf),
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "198.51.100.1:53".parse().unwrap()
            ]
        );
        assert!(host_resolvers("nameserver 127.0.0.53\noptions edns0\n").is_empty());
    }

    #[test]
    fn up_speaks_only_when_the_host_does_not_forward() {
        assert!(forwarding_note("0\n")
            .unwrap()
            .contains("sysctl -w net.ipv4.ip_forward=1"));
        assert_eq!(forwarding_note("1\n"), None);
    }
}
