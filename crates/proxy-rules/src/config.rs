//! Inputs that are not Kubernetes objects: this node and the proxy's settings.

use std::net::Ipv4Addr;

use crate::model::Ipv4Cidr;

/// The node the ruleset is rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name; endpoints whose `nodeName` equals it are local.
    pub name: String,
    /// Addresses that accept NodePort traffic.
    pub node_ips: Vec<Ipv4Addr>,
    /// This node's pod range (informational; locality comes from `nodeName`).
    pub pod_cidr: Option<Ipv4Cidr>,
}

/// Proxy-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// nftables table name (family `ip`).
    pub table: String,
    /// Pod CIDR of the whole cluster: tells pod traffic from everything else.
    /// If it does not parse, rules that need it are left out (as kube-proxy
    /// does without a local-traffic detector); `validate` reports it.
    pub cluster_cidr: String,
    /// Service ClusterIP range: traffic to unallocated IPs in it is dropped.
    pub service_cidr: String,
    /// Packet mark bit meaning "masquerade me in postrouting".
    pub masquerade_mark: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            table: "kinet".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            service_cidr: kinet_types::wellknown::SERVICE_CIDR.into(),
            masquerade_mark: 0x4000,
        }
    }
}

impl ProxyConfig {
    /// Checks the settings `render` would otherwise quietly work around.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.table.is_empty()
            && self.table.len() <= 64
            && self.table.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!("invalid table name {:?}", self.table));
        }
        self.cluster_cidr
            .parse::<Ipv4Cidr>()
            .map_err(|e| format!("cluster_cidr: {e}"))?;
        self.service_cidr
            .parse::<Ipv4Cidr>()
            .map_err(|e| format!("service_cidr: {e}"))?;
        if self.masquerade_mark == 0 {
            return Err("masquerade_mark must have a bit set".into());
        }
        Ok(())
    }

    pub(crate) fn cluster_cidr(&self) -> Option<Ipv4Cidr> {
        self.cluster_cidr.parse().ok()
    }

    pub(crate) fn service_cidr(&self) -> Option<Ipv4Cidr> {
        self.service_cidr.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ProxyConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_reported() {
        let mut c = ProxyConfig {
            cluster_cidr: "10.244.0.0".into(),
            ..ProxyConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("cluster_cidr"));
        c = ProxyConfig {
            table: "bad name".into(),
            ..ProxyConfig::default()
        };
        assert!(c.validate().is_err());
        c = ProxyConfig {
            masquerade_mark: 0,
            ..ProxyConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
