//! Chain names exactly as kube-proxy's iptables proxier builds them
//! (`pkg/proxy/iptables/proxier.go`): a prefix plus the first 16 characters of the
//! standard base32 of a sha256, so names fit iptables' 28-character limit.

use std::net::SocketAddrV4;

use kinet_proxy_rules::{sha256, ServicePort};

/// `servicePortName.String()`: `ns/name:port`, or `ns/name` for an unnamed port. Used in
/// chain hashes and rule comments.
pub fn service_port_name(sp: &ServicePort) -> String {
    if sp.port_name.is_empty() {
        format!("{}/{}", sp.namespace, sp.name)
    } else {
        format!("{}/{}:{}", sp.namespace, sp.name, sp.port_name)
    }
}

/// kube-proxy's `portProtoHash`: base32(sha256(servicePortName + protocol))[:16].
fn port_proto_hash(sp: &ServicePort) -> String {
    hash16(&format!("{}{}", service_port_name(sp), sp.proto))
}

fn hash16(s: &str) -> String {
    base32_prefix16(&sha256(s.as_bytes()))
}

/// The first 16 characters of RFC 4648 base32 (standard alphabet): the first 80 bits.
fn base32_prefix16(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = bytes[..10]
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// The chains of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChains {
    /// `KUBE-SVC-`: all usable endpoints (cluster traffic policy).
    pub cluster: String,
    /// `KUBE-SVL-`: this node's endpoints only (Local traffic policy).
    pub local: String,
    /// `KUBE-EXT-`: NodePort, external and load-balancer traffic (kube-proxy before 1.24
    /// called it `KUBE-XLB-`, and used it only for `externalTrafficPolicy: Local`).
    pub external: String,
    /// `KUBE-FW-`: load-balancer traffic checked against loadBalancerSourceRanges.
    pub firewall: String,
}

impl PortChains {
    pub fn new(sp: &ServicePort) -> PortChains {
        let hash = port_proto_hash(sp);
        PortChains {
            cluster: format!("KUBE-SVC-{hash}"),
            local: format!("KUBE-SVL-{hash}"),
            external: format!("KUBE-EXT-{hash}"),
            firewall: format!("KUBE-FW-{hash}"),
        }
    }
}

/// `KUBE-SEP-` + base32(sha256(servicePortName + protocol + "ip:port"))[:16]; also the
/// name of the endpoint's `-m recent` affinity list.
pub fn endpoint_chain(sp: &ServicePort, ep: SocketAddrV4) -> String {
    format!(
        "KUBE-SEP-{}",
        hash16(&format!("{}{}{ep}", service_port_name(sp), sp.proto))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_proxy_rules::Proto;
    use std::net::Ipv4Addr;

    pub(crate) fn port(ns: &str, name: &str, port_name: &str, proto: Proto) -> ServicePort {
        ServicePort {
            namespace: ns.into(),
            name: name.into(),
            port_name: port_name.into(),
            proto,
            port: 80,
            cluster_ip: Ipv4Addr::new(172, 30, 0, 41),
            node_port: None,
            external_ips: Vec::new(),
            lb_ips: Vec::new(),
            source_ranges: Vec::new(),
            external_local: false,
            internal_local: false,
            affinity_secs: None,
        }
    }

    #[test]
    fn base32_prefix_matches_rfc4648() {
        // base32("helloworld") = "NBSWY3DPO5XXE3DE".
        let mut buf = [0u8; 32];
        buf[..10].copy_from_slice(b"helloworld");
        assert_eq!(base32_prefix16(&buf), "NBSWY3DPO5XXE3DE");
    }

    #[test]
    fn names_match_kube_proxy() {
        // The names in kube-proxy's iptables proxier_test.go for ns1/svc1:p80.
        let sp = port("ns1", "svc1", "p80", Proto::Tcp);
        let chains = PortChains::new(&sp);
        assert_eq!(chains.cluster, "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(chains.external, "KUBE-EXT-XPGD46QRK7WJZT7O");
        assert_eq!(chains.local, "KUBE-SVL-XPGD46QRK7WJZT7O");
        let ep = SocketAddrV4::new(Ipv4Addr::new(10, 180, 0, 1), 80);
        assert_eq!(endpoint_chain(&sp, ep), "KUBE-SEP-SXIVWICOYRO3J4NJ");
    }

    #[test]
    fn unnamed_ports_leave_the_port_out_of_the_name() {
        let sp = port("default", "nginx-service", "", Proto::Tcp);
        assert_eq!(service_port_name(&sp), "default/nginx-service");
        assert_eq!(
            PortChains::new(&sp).cluster,
            format!("KUBE-SVC-{}", hash16("default/nginx-servicetcp"))
        );
    }
}
