//! Small idempotent netlink steps shared by the node, vxlan and pod code, and by the cluster's
//! underlay and host link. Every `ensure_*` treats "already exists" as success, as the CNI
//! bridge plugin does.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use kinet_netns::NetNs;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::LinkVeth;

use crate::desired::Mac;
use crate::{Error, Result};

const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;

/// The errno of a netlink NACK, if that is what the error is.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    }
}

pub fn is_exists(e: &rtnetlink::Error) -> bool {
    errno(e) == Some(EEXIST)
}

pub fn is_missing(e: &rtnetlink::Error) -> bool {
    matches!(errno(e), Some(ENOENT | ESRCH | ENODEV))
}

/// Wraps a netlink error with what was being done.
pub fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

/// Accepts "already exists".
pub fn exists_ok(r: Result<(), rtnetlink::Error>, op: &str) -> Result<()> {
    match r {
        Err(e) if !is_exists(&e) => Err(nl(op)(e)),
        _ => Ok(()),
    }
}

/// The link called `name`, if any.
pub async fn link(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(nl(format!("get link {name}"))(e)),
    }
}

/// The link called `name`; missing is an error.
pub async fn need_link(h: &Handle, name: &str) -> Result<LinkMessage> {
    link(h, name)
        .await?
        .ok_or_else(|| Error::Missing(format!("link {name}")))
}

/// Every link: (index, name).
pub async fn links(h: &Handle) -> Result<Vec<(u32, String)>> {
    let all: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl("list links"))?;
    Ok(all
        .iter()
        .map(|m| (m.header.index, link_name(m).unwrap_or_default()))
        .collect())
}

pub fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

pub fn link_mac(m: &LinkMessage) -> Option<Mac> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) => Mac::from_slice(b),
        _ => None,
    })
}

pub fn link_mtu(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(v) => Some(*v),
        _ => None,
    })
}

pub fn link_controller(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(v) => Some(*v),
        _ => None,
    })
}

pub fn is_up(m: &LinkMessage) -> bool {
    m.header.flags.contains(LinkFlags::Up)
}

/// Sets up, and optionally MTU and bridge, on a link by index.
pub async fn set_link(
    h: &Handle,
    index: u32,
    mtu: Option<u32>,
    controller: Option<u32>,
) -> Result<()> {
    let mut b = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    if let Some(c) = controller {
        b = b.controller(c);
    }
    h.link()
        .set(b.build())
        .execute()
        .await
        .map_err(nl(format!("set link {index}")))
}

/// Brings `lo` up (fresh namespaces have it down).
pub async fn lo_up(h: &Handle) -> Result<()> {
    let lo = need_link(h, "lo").await?;
    if !is_up(&lo) {
        set_link(h, lo.header.index, None, None).await?;
    }
    Ok(())
}

/// The IPv4 addresses on a link, with prefix lengths.
pub async fn addrs(h: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
    let all: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl(format!("list addresses of link {index}")))?;
    Ok(all
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                _ => None,
            })
        })
        .collect())
}

/// `ip addr add ip/prefix dev <index>`, unless present.
pub async fn ensure_addr(h: &Handle, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
    let r = h
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await;
    exists_ok(r, &format!("add address {ip}/{prefix} to link {index}"))
}

/// `ip route replace default via gw [mtu M]`, unless the default route is that already: one
/// made before a change of gateway or MTU (a pod from before the MTU changed) is replaced.
pub async fn ensure_default_route(h: &Handle, gw: Ipv4Addr, mtu: Option<u32>) -> Result<()> {
    use rtnetlink::packet_route::route::{RouteAttribute, RouteMetric};
    if default_route(h).await? == Some((gw, mtu)) {
        return Ok(());
    }
    let mut msg = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
    if let Some(m) = mtu {
        msg.attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(m)]));
    }
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("replace default route via {gw}")))
}

/// The gateway and MTU metric of the main table's IPv4 default route, if any.
pub async fn default_route(h: &Handle) -> Result<Option<(Ipv4Addr, Option<u32>)>> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMetric};
    let routes: Vec<_> = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl("list routes"))?;
    Ok(routes
        .iter()
        .filter(|m| m.header.table == RouteHeader::RT_TABLE_MAIN)
        .filter(|m| m.header.destination_prefix_length == 0)
        .find_map(|m| {
            let gw = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            })?;
            let mtu = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Metrics(ms) => ms.iter().find_map(|x| match x {
                    RouteMetric::Mtu(v) => Some(*v),
                    _ => None,
                }),
                _ => None,
            });
            Some((gw, mtu))
        }))
}

/// Creates veth `name` in `h`'s namespace whose peer `peer` is born directly in `target`
/// (no rename or move afterwards, so the peer name only has to be free in `target`).
pub async fn create_veth_into(
    h: &Handle,
    name: &str,
    peer: &str,
    target: &NetNs,
    mtu: u32,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let peer_msg = LinkUnspec::new_with_name(peer)
        .mtu(mtu)
        .setns_by_fd(target.file().as_raw_fd())
        .build();
    let msg = LinkVeth::new(name, peer)
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl(format!("add veth {name} <-> {}:{peer}", target.name())))
}

/// [`create_veth_into`] unless `peer` is already in `target` (`target_h` is a handle there).
/// A `name` left alone by a half-made pair would block the name, so it is removed first.
pub async fn ensure_veth_into(
    h: &Handle,
    name: &str,
    peer: &str,
    target: &NetNs,
    target_h: &Handle,
    mtu: u32,
) -> Result<()> {
    if link(target_h, peer).await?.is_some() {
        return Ok(());
    }
    if let Some(stale) = link(h, name).await? {
        let _ = h.link().del(stale.header.index).execute().await;
    }
    create_veth_into(h, name, peer, target, mtu).await
}
