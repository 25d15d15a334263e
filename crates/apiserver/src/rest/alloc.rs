//! ClusterIP and NodePort allocation, done inside the API server at create/update time as
//! kube-apiserver does. This is each server's cache, rebuilt from the stored Services at start;
//! the claims in the store (`claims`) decide between servers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use kinet_ipam::Ipv4Cidr;
use kinet_types::wellknown::SERVICE_CIDR;
use kinet_types::FieldError;
use rand::Rng;
use serde_json::json;

/// The service network of a cluster.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub service_cidr: Ipv4Cidr,
    pub node_ports: (u16, u16),
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            service_cidr: SERVICE_CIDR
                .parse()
                .expect("the well-known Service CIDR parses"),
            node_ports: (30000, 32767),
        }
    }
}

impl NetworkConfig {
    fn cidr_text(&self) -> String {
        self.service_cidr.to_string()
    }

    /// The range usable for ClusterIPs: the CIDR without its network and broadcast addresses.
    fn ip_range(&self) -> (u32, u32) {
        (
            u32::from(self.service_cidr.network()) + 1,
            u32::from(self.service_cidr.broadcast()) - 1,
        )
    }

    /// The first address of the range: the `kubernetes` Service.
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.ip_range().0)
    }

    /// The tenth address: kube-dns, by convention.
    pub fn dns_ip(&self) -> Ipv4Addr {
        self.service_cidr
            .nth(10)
            .unwrap_or(self.service_cidr.network())
    }
}

/// Who holds each allocated IP and port (the owning Service's storage key).
#[derive(Debug, Default)]
pub struct Allocators {
    pub network: NetworkConfig,
    ips: BTreeMap<u32, String>,
    ports: BTreeMap<u16, String>,
}

impl Allocators {
    pub fn new(network: NetworkConfig) -> Self {
        Allocators {
            network,
            ips: BTreeMap::new(),
            ports: BTreeMap::new(),
        }
    }

    /// Takes `requested` for `owner`, or a free random address (kube-dns's address is only given
    /// on request).
    pub fn allocate_ip(
        &mut self,
        owner: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, FieldError> {
        let (lo, hi) = self.network.ip_range();
        if let Some(ip) = requested {
            let bad = |detail: String| {
                FieldError::invalid("spec.clusterIPs", json!([ip.to_string()]), &detail)
            };
            let n = u32::from(ip);
            if n < lo || n > hi {
                return Err(bad(format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    self.network.cidr_text()
                )));
            }
            match self.ips.get(&n) {
                Some(holder) if holder != owner => {
                    return Err(bad(format!(
                        "failed to allocate IP {ip}: provided IP is already allocated"
                    )))
                }
                _ => {}
            }
            self.ips.insert(n, owner.to_string());
            return Ok(ip);
        }
        let reserved = u32::from(self.network.dns_ip());
        let span = hi - lo + 1;
        let start = rand::rng().random_range(0..span);
        for i in 0..span {
            let n = lo + (start + i) % span;
            if n != reserved && !self.ips.contains_key(&n) {
                self.ips.insert(n, owner.to_string());
                return Ok(Ipv4Addr::from(n));
            }
        }
        Err(FieldError::invalid(
            "spec.clusterIPs",
            json!([]),
            "failed to allocate a serviceIP: range is full",
        ))
    }

    pub fn release_ip(&mut self, owner: &str, ip: Ipv4Addr) {
        let n = u32::from(ip);
        if self.ips.get(&n).is_some_and(|holder| holder == owner) {
            self.ips.remove(&n);
        }
    }

    /// Takes `requested` (field path `field`) or a free random port in the NodePort range.
    pub fn allocate_port(
        &mut self,
        owner: &str,
        field: &str,
        requested: Option<u16>,
    ) -> Result<u16, FieldError> {
        let (lo, hi) = self.network.node_ports;
        if let Some(port) = requested {
            if port < lo || port > hi {
                return Err(FieldError::invalid(
                    field,
                    port,
                    &format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                ));
            }
            if self.ports.get(&port).is_some_and(|holder| holder != owner) {
                return Err(FieldError::invalid(
                    field,
                    port,
                    "provided port is already allocated",
                ));
            }
            self.ports.insert(port, owner.to_string());
            return Ok(port);
        }
        let span = u32::from(hi - lo) + 1;
        let start = rand::rng().random_range(0..span);
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            if let std::collections::btree_map::Entry::Vacant(slot) = self.ports.entry(port) {
                slot.insert(owner.to_string());
                return Ok(port);
            }
        }
        Err(FieldError::invalid(field, 0, "range is full"))
    }

    pub fn release_port(&mut self, owner: &str, port: u16) {
        if self.ports.get(&port).is_some_and(|holder| holder == owner) {
            self.ports.remove(&port);
        }
    }

    /// Records who holds `ip` as the store says: another API server's Service, or nobody.
    pub fn learn_ip(&mut self, ip: Ipv4Addr, holder: Option<&str>) {
        learn(&mut self.ips, u32::from(ip), holder);
    }

    /// Records who holds `port` as the store says.
    pub fn learn_port(&mut self, port: u16, holder: Option<&str>) {
        learn(&mut self.ports, port, holder);
    }

    /// Whether `owner` already holds `port` (a Service keeping its port across an update).
    pub fn holds_port(&self, owner: &str, port: u16) -> bool {
        self.ports.get(&port).is_some_and(|holder| holder == owner)
    }
}

fn learn<N: Ord>(held: &mut BTreeMap<N, String>, n: N, holder: Option<&str>) {
    match holder {
        Some(h) => held.insert(n, h.to_string()),
        None => held.remove(&n),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips() {
        let mut a = Allocators::new(NetworkConfig::default());
        assert_eq!(a.network.kubernetes_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(a.network.dns_ip(), Ipv4Addr::new(10, 96, 0, 10));
        let want = Ipv4Addr::new(10, 96, 0, 50);
        assert_eq!(a.allocate_ip("svc/a", Some(want)), Ok(want));
        let err = a.allocate_ip("svc/b", Some(want)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.50\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated"
        );
        let err = a
            .allocate_ip("svc/b", Some(Ipv4Addr::new(10, 0, 0, 1)))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("is not in the valid range. The range of valid IPs is 10.96.0.0/12"));
        let ip = a.allocate_ip("svc/b", None).unwrap();
        assert!(u32::from(ip) >> 20 == u32::from(Ipv4Addr::new(10, 96, 0, 0)) >> 20 && ip != want);
        a.release_ip("svc/a", want);
        assert_eq!(a.allocate_ip("svc/c", Some(want)), Ok(want));
        // Another server's Service holds it, then releases it.
        a.learn_ip(want, Some("svc/elsewhere"));
        assert!(a.allocate_ip("svc/d", Some(want)).is_err());
        a.learn_ip(want, None);
        assert_eq!(a.allocate_ip("svc/d", Some(want)), Ok(want));
    }

    #[test]
    fn node_ports() {
        let mut a = Allocators::new(NetworkConfig::default());
        assert_eq!(
            a.allocate_port("np", "spec.ports[0].nodePort", Some(30080)),
            Ok(30080)
        );
        let err = a
            .allocate_port("np2", "spec.ports[0].nodePort", Some(30080))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        let err = a
            .allocate_port("np2", "spec.ports[0].nodePort", Some(40000))
            .unwrap_err();
        assert!(err.to_string().ends_with(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ));
        let p = a
            .allocate_port("np2", "spec.ports[0].nodePort", None)
            .unwrap();
        assert!((30000..=32767).contains(&p) && p != 30080);
        assert!(a.holds_port("np", 30080));
        a.release_port("np", 30080);
        assert!(!a.holds_port("np", 30080));
    }
}
