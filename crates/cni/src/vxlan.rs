//! flannel's `flannel.1`: VNI 1, UDP 8472, no learning (the agent programs every neighbour
//! and FDB entry), the VTEP address podCIDR.0/32, MTU = underlay - 50.

use kinet_netns::NetNs;
use rtnetlink::packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo};
use rtnetlink::LinkVxlan;

use crate::desired::{vtep_ip, vxlan_mtu, Mac, NodeNetwork, VXLAN_DEV, VXLAN_PORT, VXLAN_VNI};
use crate::nl::{self, exists_ok};
use crate::{Error, Result};

/// Makes `flannel.1` exist, addressed and up in the node namespace; returns its MAC (the VTEP
/// MAC that peers need). A device of that name with other VXLAN settings is an error, not
/// silently reused.
pub async fn ensure_vxlan(node: &NetNs, net: &NodeNetwork) -> Result<Mac> {
    let h = node.netlink_handle()?;
    let underlay = nl::need_link(&h, &net.underlay_dev).await?;
    let mtu = vxlan_mtu(net.mtu);
    let msg = LinkVxlan::new(VXLAN_DEV, VXLAN_VNI)
        .port(VXLAN_PORT)
        .learning(false)
        .local(net.underlay_ip)
        .dev(underlay.header.index)
        .mtu(mtu)
        .build();
    exists_ok(
        h.link().add(msg).execute().await,
        &format!("add {VXLAN_DEV}"),
    )?;

    let dev = nl::need_link(&h, VXLAN_DEV).await?;
    check_vxlan_settings(&dev.attributes)?;
    nl::ensure_addr(&h, dev.header.index, vtep_ip(net.pod_cidr), 32).await?;
    nl::set_link(&h, dev.header.index, Some(mtu), None).await?;
    nl::link_mac(&dev).ok_or_else(|| Error::Missing(format!("MAC of {VXLAN_DEV}")))
}

fn check_vxlan_settings(attrs: &[LinkAttribute]) -> Result<()> {
    let data = attrs.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    });
    let Some(data) = data else {
        return Err(Error::Invalid(format!(
            "{VXLAN_DEV} exists but is not a vxlan device"
        )));
    };
    let id = data.iter().find_map(|i| match i {
        InfoVxlan::Id(v) => Some(*v),
        _ => None,
    });
    let port = data.iter().find_map(|i| match i {
        InfoVxlan::Port(v) => Some(*v),
        _ => None,
    });
    if id != Some(VXLAN_VNI) || port != Some(VXLAN_PORT) {
        return Err(Error::Invalid(format!(
            "{VXLAN_DEV} has vni {id:?} port {port:?}, want {VXLAN_VNI}/{VXLAN_PORT}"
        )));
    }
    Ok(())
}
