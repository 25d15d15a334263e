//! This node's view from its Node object: addresses that accept NodePort
//! traffic and its pod range. Pure; the sync loop feeds it the watched Node.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;
use kinet_proxy_rules::NodeInfo;

/// `fallback` updated with what `node` says: its IPv4 `InternalIP` and
/// `ExternalIP` addresses (if it lists any) and its `podCIDR` (if set).
/// Without a Node object the fallback is used as is.
pub fn node_info(node: Option<&Node>, fallback: &NodeInfo) -> NodeInfo {
    let mut info = fallback.clone();
    let Some(node) = node else { return info };
    let ips: Vec<Ipv4Addr> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    if !ips.is_empty() {
        let mut ips = ips;
        ips.dedup();
        info.node_ips = ips;
    }
    if let Some(cidr) = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse().ok())
    {
        info.pod_cidr = Some(cidr);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fallback() -> NodeInfo {
        NodeInfo {
            name: "node-a".into(),
            node_ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
            pod_cidr: None,
        }
    }

    #[test]
    fn addresses_and_pod_cidr_come_from_the_node() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-a"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "172.20.0.2"},
                {"type": "InternalIP", "address": "fd00::2"}
            ]}
        }))
        .unwrap();
        let info = node_info(Some(&node), &fallback());
        assert_eq!(info.node_ips, vec![Ipv4Addr::new(172, 20, 0, 2)]);
        assert_eq!(info.pod_cidr, Some("10.244.1.0/24".parse().unwrap()));
        assert_eq!(info.name, "node-a");
    }

    #[test]
    fn missing_node_or_addresses_keep_the_fallback() {
        assert_eq!(node_info(None, &fallback()), fallback());
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "node-a"}})).unwrap();
        assert_eq!(node_info(Some(&bare), &fallback()), fallback());
    }
}
