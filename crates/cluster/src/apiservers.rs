//! `kinet up --api-servers N`: where each `kinet serve` of a cluster listens. All serve on the
//! cluster's one port (the `kubernetes` Service's targetPort, as kube-apiserver's servers
//! share `--secure-port`), each on addresses of its own:
//!
//! ```text
//! server 0:  127.0.0.1:<port>   (the kubeconfig's)   <gateway>:<port>        (the underlay's .1)
//! server i:  127.0.0.<1+i>:<port>                    <underlay>.255.<i>:<port>  (on the host link)
//! ```
//!
//! The underlay addresses sit on the host link beside the gateway, below the load-balancer
//! pool and the outside namespace at the top of the underlay. Pure: [`crate::nodes::net`] adds
//! the addresses, [`crate::process`] starts the servers.

use std::net::{Ipv4Addr, SocketAddr};

use kinet_ipam::Ipv4Cidr;

/// The most servers one cluster may have (etcd's own advice for members is 7).
pub const MAX: usize = 5;

/// One `kinet serve` of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiServer {
    /// 0 for the first: its PID file and log keep the names a single server has.
    pub index: usize,
    /// Where the host (kubectl, `kinet up`) reaches it.
    pub loopback: SocketAddr,
    /// Where the nodes reach it: the address it advertises in the `kubernetes` endpoints.
    pub underlay: Option<SocketAddr>,
}

impl ApiServer {
    /// The addresses it listens on, the advertised one first.
    pub fn listen(&self) -> Vec<SocketAddr> {
        self.underlay.into_iter().chain([self.loopback]).collect()
    }

    /// Its URL as the host reaches it.
    pub fn url(&self) -> String {
        format!("https://{}", self.loopback)
    }
}

/// The `count` servers of a cluster serving on `port`, with `underlay` when it has nodes.
pub fn plan(count: usize, port: u16, underlay: Option<Ipv4Cidr>) -> Vec<ApiServer> {
    (0..count)
        .map(|index| ApiServer {
            index,
            loopback: SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1 + index as u8), port)),
            underlay: underlay.map(|cidr| SocketAddr::from((underlay_ip(cidr, index), port))),
        })
        .collect()
}

/// Server `index`'s address on the underlay `cidr`: the gateway for the first.
pub fn underlay_ip(cidr: Ipv4Cidr, index: usize) -> Ipv4Addr {
    let gateway = kinet_cni::Underlay::new(cidr).gateway;
    match index {
        0 => gateway,
        i => cidr.nth(cidr.size() - 256 + i as u64).unwrap_or(gateway),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_share_the_port_on_addresses_of_their_own() {
        let cidr = "172.18.0.0/16".parse().unwrap();
        let servers = plan(3, 6443, Some(cidr));
        let listen: Vec<Vec<String>> = servers
            .iter()
            .map(|s| s.listen().iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(
            listen,
            [
                ["172.18.0.1:6443", "127.0.0.1:6443"],
                ["172.18.255.1:6443", "127.0.0.2:6443"],
                ["172.18.255.2:6443", "127.0.0.3:6443"],
            ]
        );
        assert_eq!(servers[1].url(), "https://127.0.0.2:6443");
        // Below the load-balancer pool and the outside namespace.
        let (pool, _) = kinet_controllers::loadbalancer::default_range(cidr);
        assert!(underlay_ip(cidr, MAX) < crate::nodes::outside_ip(cidr));
        assert!(underlay_ip(cidr, MAX) < pool);
        // Without nodes: loopback only.
        assert_eq!(
            plan(1, 7000, None)[0].listen(),
            ["127.0.0.1:7000".parse::<SocketAddr>().unwrap()]
        );
    }
}
