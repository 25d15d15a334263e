//! A pod's network, as the CNI bridge plugin makes it: a veth whose host end sits on `cbr0`
//! in the node namespace and whose other end is the pod's `eth0`, with the pod's address, a
//! default route via the bridge address (with the overlay's MTU, if any), and `lo` up; the
//! bridge port in hairpin mode.

use std::net::Ipv4Addr;

use kinet_netns::NetNs;
use rtnetlink::LinkBridgePort;

use crate::desired::{Mac, POD_BRIDGE};
use crate::nl;
use crate::nl::create_veth_into;
use crate::{Error, Result};

/// One pod interface to set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// Name inside the pod, normally `eth0`.
    pub ifname: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Prefix length of the pod subnet (the node's podCIDR).
    pub prefix: u8,
    /// Default gateway: the node's `cbr0` address.
    pub gateway: Ipv4Addr,
    /// Host-side veth name in the node namespace, e.g. from [`crate::host_veth_name`].
    pub host_veth: String,
    /// Interface MTU (the node's pod MTU).
    pub mtu: u32,
    /// MTU of the default route, below `mtu` when traffic leaving the node is encapsulated
    /// ([`crate::NodeNetwork::pod_route_mtu`]).
    pub route_mtu: Option<u32>,
}

/// What was set up: the CNI result's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    /// Host-side veth name.
    pub host_veth: String,
    /// MAC of the pod's interface.
    pub mac: Mac,
}

/// Adds (or repairs) a pod's interface. Idempotent: run twice, same result.
pub async fn add_pod(node: &NetNs, pod: &NetNs, spec: &PodSpec) -> Result<PodLink> {
    let nh = node.netlink_handle()?;
    let ph = pod.netlink_handle()?;
    let bridge = nl::need_link(&nh, POD_BRIDGE).await?;

    let host = nl::link(&nh, &spec.host_veth).await?;
    let inner = nl::link(&ph, &spec.ifname).await?;
    if host.is_none() || inner.is_none() {
        // Half a pair is left from an interrupted ADD: drop it and start over.
        if let Some(h) = host {
            let _ = nh.link().del(h.header.index).execute().await;
        }
        if let Some(i) = inner {
            let _ = ph.link().del(i.header.index).execute().await;
        }
        create_veth_into(&nh, &spec.host_veth, &spec.ifname, pod, spec.mtu).await?;
    }
    let host = nl::need_link(&nh, &spec.host_veth).await?;
    nl::set_link(
        &nh,
        host.header.index,
        Some(spec.mtu),
        Some(bridge.header.index),
    )
    .await?;
    // Hairpin, as the bridge plugin's hairpinMode and kubenet set it: a pod reaching its own
    // Service may be DNATed back to itself, out of the bridge port it came in by.
    // RTM_NEWLINK without create (`ip link set … type bridge_slave`): RTM_SETLINK ignores
    // port attributes.
    nh.link()
        .set_port(LinkBridgePort::new(host.header.index).hairpin(true).build())
        .execute()
        .await
        .map_err(nl::nl(format!("hairpin on {}", spec.host_veth)))?;

    nl::lo_up(&ph).await?;
    let inner = nl::need_link(&ph, &spec.ifname).await?;
    nl::ensure_addr(&ph, inner.header.index, spec.ip, spec.prefix).await?;
    nl::set_link(&ph, inner.header.index, Some(spec.mtu), None).await?;
    nl::ensure_default_route(&ph, spec.gateway, spec.route_mtu).await?;

    let mac =
        nl::link_mac(&inner).ok_or_else(|| Error::Missing(format!("MAC of {}", spec.ifname)))?;
    Ok(PodLink {
        host_veth: spec.host_veth.clone(),
        mac,
    })
}

/// Removes a pod's interface by its host end (deleting one end of a veth deletes both).
/// Missing is success, as CNI DEL requires.
pub async fn del_pod(node: &NetNs, host_veth: &str) -> Result<()> {
    let nh = node.netlink_handle()?;
    if let Some(l) = nl::link(&nh, host_veth).await? {
        match nh.link().del(l.header.index).execute().await {
            Err(e) if !nl::is_missing(&e) => return Err(nl::nl(format!("delete {host_veth}"))(e)),
            _ => {}
        }
    }
    Ok(())
}

/// CNI CHECK for one pod: the differences between its interface and `spec`, empty if none.
pub async fn check_pod(node: &NetNs, pod: &NetNs, spec: &PodSpec) -> Result<Vec<String>> {
    let nh = node.netlink_handle()?;
    let ph = pod.netlink_handle()?;
    let mut problems = Vec::new();
    match nl::link(&nh, &spec.host_veth).await? {
        None => problems.push(format!("host veth {} missing", spec.host_veth)),
        Some(h) => {
            let bridge = nl::link(&nh, POD_BRIDGE).await?.map(|b| b.header.index);
            if nl::link_controller(&h) != bridge || bridge.is_none() {
                problems.push(format!("{} is not on {POD_BRIDGE}", spec.host_veth));
            }
            if !nl::is_up(&h) {
                problems.push(format!("{} is down", spec.host_veth));
            }
        }
    }
    match nl::link(&ph, &spec.ifname).await? {
        None => problems.push(format!("{} missing in pod", spec.ifname)),
        Some(i) => {
            if !nl::is_up(&i) {
                problems.push(format!("{} is down", spec.ifname));
            }
            if nl::link_mtu(&i) != Some(spec.mtu) {
                problems.push(format!(
                    "{} mtu {:?}, want {}",
                    spec.ifname,
                    nl::link_mtu(&i),
                    spec.mtu
                ));
            }
            let addrs = nl::addrs(&ph, i.header.index).await?;
            if !addrs.contains(&(spec.ip, spec.prefix)) {
                problems.push(format!(
                    "{} has {addrs:?}, want {}/{}",
                    spec.ifname, spec.ip, spec.prefix
                ));
            }
        }
    }
    match nl::default_route(&ph).await? {
        Some((gw, mtu)) if gw == spec.gateway => {
            if mtu != spec.route_mtu {
                problems.push(format!(
                    "default route mtu {mtu:?}, want {:?}",
                    spec.route_mtu
                ));
            }
        }
        _ => problems.push(format!("default route is not via {}", spec.gateway)),
    }
    Ok(problems)
}
