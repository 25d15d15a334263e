//! The underlay (one bridge in its own namespace, like kind's docker network) and each node's
//! base network: `eth0` on the underlay, a default route to its gateway, `cbr0` for pods and
//! IPv4 forwarding.

use std::net::Ipv4Addr;

use kinet_ipam::Ipv4Cidr;
use kinet_netns::NetNs;
use rtnetlink::LinkBridge;

use crate::desired::{NodeNetwork, POD_BRIDGE, UNDERLAY_DEV};
use crate::nl::{self, exists_ok};
use crate::{Error, Result};

/// The underlay network: a bridge in its own namespace whose address is the nodes' gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Bridge name inside the underlay namespace.
    pub bridge: String,
    /// The subnet, e.g. 172.18.0.0/16 (kind's default).
    pub cidr: Ipv4Cidr,
    /// The bridge's address and the nodes' default gateway, e.g. 172.18.0.1.
    pub gateway: Ipv4Addr,
    /// MTU of the bridge and the node links.
    pub mtu: u32,
}

impl Underlay {
    /// The kind-like default: `br0`, 172.18.0.0/16, gateway .1, MTU 1500.
    pub fn kind_default() -> Underlay {
        Underlay::new("172.18.0.0/16".parse().expect("literal CIDR"))
    }

    /// An underlay on `cidr` with the gateway at its first address.
    pub fn new(cidr: Ipv4Cidr) -> Underlay {
        Underlay {
            bridge: "br0".into(),
            cidr,
            gateway: cidr.nth(1).unwrap_or(cidr.network()),
            mtu: 1500,
        }
    }
}

/// Makes the underlay bridge exist and up in `ns`, with `lo` up; returns the bridge's index.
/// The gateway address is the caller's: on the bridge ([`ensure_underlay`]), or on a host
/// link as `kinet up` does. Bridged frames skip the ip hooks there
/// (`bridge-nf-call-iptables=0`): the underlay has no rules, and every VXLAN datagram
/// between nodes crosses this bridge (docs/performance.md, issue 20).
pub async fn ensure_underlay_bridge(ns: &NetNs, u: &Underlay) -> Result<u32> {
    let h = ns.netlink_handle()?;
    nl::lo_up(&h).await?;
    let add = h
        .link()
        .add(LinkBridge::new(&u.bridge).mtu(u.mtu).build())
        .execute()
        .await;
    exists_ok(add, &format!("add bridge {}", u.bridge))?;
    let br = nl::need_link(&h, &u.bridge).await?.header.index;
    nl::set_link(&h, br, Some(u.mtu), None).await?;
    match set_sysctl(ns, BRIDGE_NF_CALL_IPTABLES, "0") {
        // Without br_netfilter, bridged frames never visit the ip hooks.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => other?,
    }
    Ok(br)
}

/// Makes the underlay bridge exist, addressed with the gateway and up, in `ns`: an underlay
/// whose namespace is its own gateway.
pub async fn ensure_underlay(ns: &NetNs, u: &Underlay) -> Result<()> {
    let br = ensure_underlay_bridge(ns, u).await?;
    let h = ns.netlink_handle()?;
    nl::ensure_addr(&h, br, u.gateway, u.cidr.prefix()).await
}

/// Puts namespace `ns` on the underlay: a veth `underlay_veth` (underlay side, on the bridge)
/// <-> `eth0` (in `ns`) with address `ip`, both up, and `lo` up. Routes are the caller's.
pub async fn attach_to_underlay(
    underlay_ns: &NetNs,
    u: &Underlay,
    ns: &NetNs,
    underlay_veth: &str,
    ip: Ipv4Addr,
) -> Result<()> {
    if !u.cidr.contains(ip) {
        return Err(Error::Invalid(format!(
            "{ip} is not in the underlay {}",
            u.cidr
        )));
    }
    let uh = underlay_ns.netlink_handle()?;
    let nh = ns.netlink_handle()?;
    nl::ensure_veth_into(&uh, underlay_veth, UNDERLAY_DEV, ns, &nh, u.mtu).await?;
    let br = nl::need_link(&uh, &u.bridge).await?;
    let outer = nl::need_link(&uh, underlay_veth).await?;
    nl::set_link(&uh, outer.header.index, Some(u.mtu), Some(br.header.index)).await?;
    nl::lo_up(&nh).await?;
    let eth0 = nl::need_link(&nh, UNDERLAY_DEV).await?;
    nl::ensure_addr(&nh, eth0.header.index, ip, u.cidr.prefix()).await?;
    nl::set_link(&nh, eth0.header.index, Some(u.mtu), None).await
}

/// Makes node namespace `node` part of the underlay and ready for pods: a veth
/// `underlay_veth` (underlay side, on the bridge) <-> `eth0` (node side) with the node's
/// underlay address, `lo` up, a default route to the gateway, `cbr0` with the bridge address,
/// and `net.ipv4.ip_forward=1` in the node.
pub async fn ensure_node(
    underlay_ns: &NetNs,
    u: &Underlay,
    node: &NetNs,
    underlay_veth: &str,
    net: &NodeNetwork,
) -> Result<()> {
    attach_to_underlay(underlay_ns, u, node, underlay_veth, net.underlay_ip).await?;
    let nh = node.netlink_handle()?;
    nl::ensure_default_route(&nh, u.gateway, None).await?;
    ensure_pod_bridge(node, net).await
}

/// Makes the node ready for pods: `cbr0` with the bridge address and the pod MTU,
/// `net.ipv4.ip_forward=1`, and bridged IPv4 passed through the ip hooks
/// (`net.bridge.bridge-nf-call-iptables=1`) so Service DNAT sees pod-to-pod traffic on
/// one bridge, as kubenet and flannel's bridge require.
pub async fn ensure_pod_bridge(node: &NetNs, net: &NodeNetwork) -> Result<()> {
    let nh = node.netlink_handle()?;
    let pod_mtu = net.pod_mtu();
    let add = nh
        .link()
        .add(LinkBridge::new(POD_BRIDGE).mtu(pod_mtu).build())
        .execute()
        .await;
    exists_ok(add, &format!("add bridge {POD_BRIDGE}"))?;
    let cbr0 = nl::need_link(&nh, POD_BRIDGE).await?;
    nl::ensure_addr(&nh, cbr0.header.index, net.bridge_ip, net.pod_cidr.prefix()).await?;
    nl::set_link(&nh, cbr0.header.index, Some(pod_mtu), None).await?;

    set_ip_forward(node)?;
    set_sysctl(node, BRIDGE_NF_CALL_IPTABLES, "1")
}

const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Writes a per-namespace sysctl from a thread inside `ns`.
fn set_sysctl(ns: &NetNs, path: &'static str, value: &'static str) -> Result<()> {
    ns.run(move || std::fs::write(path, value))?
        .map_err(|source| Error::Io {
            op: format!("{path}={value} in {}", ns.name()),
            source,
        })
}

/// The name and MTU of the link in `node` that holds `ip`: the underlay device, whatever the
/// host calls it (flannel's `--iface` found by address).
pub async fn underlay_link(node: &NetNs, ip: Ipv4Addr) -> Result<(String, u32)> {
    let h = node.netlink_handle()?;
    for (index, name) in nl::links(&h).await? {
        if nl::addrs(&h, index).await?.iter().any(|(a, _)| *a == ip) {
            let link = nl::need_link(&h, &name).await?;
            let mtu =
                nl::link_mtu(&link).ok_or_else(|| Error::Missing(format!("MTU of {name}")))?;
            return Ok((name, mtu));
        }
    }
    Err(Error::Missing(format!("a link holding {ip}")))
}

/// Writes `net.ipv4.ip_forward=1` from a thread inside `ns`: /proc/sys/net is per namespace,
/// resolved for the thread that opens it.
pub fn set_ip_forward(ns: &NetNs) -> Result<()> {
    set_sysctl(ns, "/proc/sys/net/ipv4/ip_forward", "1")
}

/// Reads `net.ipv4.ip_forward` inside `ns`.
pub fn ip_forward(ns: &NetNs) -> Result<bool> {
    let v = ns
        .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))?
        .map_err(|source| Error::Io {
            op: format!("read ip_forward in {}", ns.name()),
            source,
        })?;
    Ok(v.trim() == "1")
}
