//! Reads the peer routes, neighbours and FDB entries a node has, and converges them on
//! [`NodeNetwork::desired`]: add what is missing, remove what is stale.
//!
//! Routes this crate installs carry protocol [`ROUTE_PROTO`], so stale ones can be told from
//! routes anyone else made; neighbours and FDB entries are managed on `flannel.1` only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use kinet_ipam::Ipv4Cidr;
use kinet_netns::NetNs;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::desired::{
    plan, Desired, Fdb, Mac, Neigh, NodeNetwork, Plan, Route, POD_BRIDGE, VXLAN_DEV,
};
use crate::nl::{self, nl};
use crate::{Error, Result};

/// The route protocol kinet's peer routes carry (`ip route` shows `proto 77`).
pub const ROUTE_PROTO: u8 = 77;

/// Brings the node's peer routes, neighbours and FDB entries to `net.desired()`, and returns
/// what it changed. Safe to call repeatedly: a converged node yields an empty plan.
pub async fn sync_peers(node: &NetNs, net: &NodeNetwork) -> Result<Plan> {
    let desired = net.desired()?;
    let h = node.netlink_handle()?;
    let actual = read(&h).await?;
    let p = plan(&actual.state, &desired);
    let vx = nl::link(&h, VXLAN_DEV).await?.map(|l| l.header.index);

    // Stale first, so a route or MAC that moved is not refused as a duplicate.
    for r in &p.remove.routes {
        if let Some(msg) = actual.route_msgs.get(r) {
            let res = h.route().del(msg.clone()).execute().await;
            ignore_missing(res, &format!("delete route {}", r.dst))?;
        }
    }
    if let Some(idx) = vx {
        for n in &p.remove.neighs {
            let res = h.neighbours().del(neigh_msg(idx, n)).execute().await;
            ignore_missing(res, &format!("delete neighbour {}", n.ip))?;
        }
        for f in &p.remove.fdb {
            let res = h.neighbours().del(fdb_msg(idx, f)).execute().await;
            ignore_missing(res, &format!("delete fdb {}", f.mac))?;
        }
    }

    if !p.add.neighs.is_empty()
        || !p.add.fdb.is_empty()
        || p.add.routes.iter().any(|r| r.dev == VXLAN_DEV)
    {
        let idx = vx.ok_or_else(|| Error::Missing(format!("link {VXLAN_DEV}")))?;
        // ARP and FDB before the routes, so the first packet already has a path.
        for n in &p.add.neighs {
            h.neighbours()
                .add(idx, IpAddr::V4(n.ip))
                .link_layer_address(&n.mac.0)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(nl(format!("add neighbour {} {}", n.ip, n.mac)))?;
        }
        for f in &p.add.fdb {
            h.neighbours()
                .add_bridge(idx, &f.mac.0)
                .destination(IpAddr::V4(f.dst))
                .flags(NeighbourFlags::Own)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(nl(format!("add fdb {} dst {}", f.mac, f.dst)))?;
        }
    }
    let names = nl::links(&h).await?;
    for r in &p.add.routes {
        let idx = names
            .iter()
            .find(|(_, n)| *n == r.dev)
            .map(|(i, _)| *i)
            .ok_or_else(|| Error::Missing(format!("link {}", r.dev)))?;
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.dst.network(), r.dst.prefix())
            .gateway(r.via)
            .output_interface(idx)
            .protocol(RouteProtocol::Other(ROUTE_PROTO));
        if r.onlink {
            b = b.onlink();
        }
        // replace: a route for the same prefix by someone else is taken over, not duplicated.
        h.route()
            .add(b.build())
            .replace()
            .execute()
            .await
            .map_err(nl(format!(
                "add route {} via {} dev {}",
                r.dst, r.via, r.dev
            )))?;
    }
    Ok(p)
}

/// Removes what the pod network made in a namespace it does not own (a joined host's):
/// kinet's peer routes, then `flannel.1` (its neighbours and FDB entries go with it) and
/// `cbr0`. What is already gone is success.
pub async fn remove_node_network(node: &NetNs) -> Result<()> {
    let h = node.netlink_handle()?;
    for msg in read(&h).await?.route_msgs.into_values() {
        ignore_missing(h.route().del(msg).execute().await, "delete peer route")?;
    }
    for dev in [VXLAN_DEV, POD_BRIDGE] {
        if let Some(link) = nl::link(&h, dev).await? {
            let res = h.link().del(link.header.index).execute().await;
            ignore_missing(res, &format!("delete link {dev}"))?;
        }
    }
    Ok(())
}

/// What `sync_peers` would change: empty when the node matches `net`.
pub async fn check_peers(node: &NetNs, net: &NodeNetwork) -> Result<Plan> {
    let desired = net.desired()?;
    let h = node.netlink_handle()?;
    Ok(plan(&read(&h).await?.state, &desired))
}

/// The managed entries a node has, with the raw route messages (for exact deletion).
struct Actual {
    state: Desired,
    route_msgs: BTreeMap<Route, RouteMessage>,
}

async fn read(h: &Handle) -> Result<Actual> {
    let names: BTreeMap<u32, String> = nl::links(h).await?.into_iter().collect();
    let vx = names.iter().find(|(_, n)| *n == VXLAN_DEV).map(|(i, _)| *i);
    let mut state = Desired::default();
    let mut route_msgs = BTreeMap::new();

    let routes: Vec<RouteMessage> = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl("list routes"))?;
    for m in routes {
        if m.header.table != RouteHeader::RT_TABLE_MAIN
            || m.header.protocol != RouteProtocol::Other(ROUTE_PROTO)
        {
            continue;
        }
        if let Some(r) = route_of(&m, &names) {
            route_msgs.insert(r.clone(), m);
            state.routes.insert(r);
        }
    }

    if let Some(idx) = vx {
        let neighs: Vec<NeighbourMessage> = h
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list neighbours"))?;
        for m in neighs.iter().filter(|m| m.header.ifindex == idx) {
            if m.header.state != NeighbourState::Permanent {
                continue;
            }
            if let (Some(IpAddr::V4(ip)), Some(mac)) = (neigh_dst(m), neigh_mac(m)) {
                state.neighs.insert(Neigh { ip, mac });
            }
        }
        let fdb: Vec<NeighbourMessage> = h
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list fdb"))?;
        for m in fdb.iter().filter(|m| m.header.ifindex == idx) {
            if let (Some(IpAddr::V4(dst)), Some(mac)) = (neigh_dst(m), neigh_mac(m)) {
                state.fdb.insert(Fdb { mac, dst });
            }
        }
    }
    Ok(Actual { state, route_msgs })
}

fn route_of(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let (mut via, mut dev) = (None, None);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(*ip),
            RouteAttribute::Oif(i) => dev = names.get(i).cloned(),
            _ => {}
        }
    }
    Some(Route {
        dst: Ipv4Cidr::new(dst, m.header.destination_prefix_length).ok()?,
        via: via?,
        dev: dev?,
        onlink: m.header.flags.contains(RouteFlags::Onlink),
    })
}

fn neigh_dst(m: &NeighbourMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        // AF_BRIDGE (FDB) entries decode their IPv4 remote as raw bytes.
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice())
                .ok()
                .map(|o| IpAddr::V4(o.into()))
        }
        _ => None,
    })
}

fn neigh_mac(m: &NeighbourMessage) -> Option<Mac> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => Mac::from_slice(b),
        _ => None,
    })
}

fn neigh_msg(idx: u32, n: &Neigh) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = idx;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            n.ip,
        )));
    m
}

fn fdb_msg(idx: u32, f: &Fdb) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = idx;
    m.header.flags = NeighbourFlags::Own;
    m.header.state = NeighbourState::Permanent;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(f.mac.0.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            f.dst,
        )));
    m
}

fn ignore_missing(r: Result<(), rtnetlink::Error>, op: &str) -> Result<()> {
    match r {
        Err(e) if !nl::is_missing(&e) => Err(nl(op)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_messages_map_back_to_routes() {
        let names = BTreeMap::from([(7, VXLAN_DEV.to_string())]);
        let mut m = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::new(10, 244, 2, 0), 24)
            .gateway(Ipv4Addr::new(10, 244, 2, 0))
            .output_interface(7)
            .onlink()
            .build();
        let r = route_of(&m, &names).unwrap();
        assert_eq!(r.dst.to_string(), "10.244.2.0/24");
        assert_eq!(
            (r.via, r.dev.as_str(), r.onlink),
            (Ipv4Addr::new(10, 244, 2, 0), VXLAN_DEV, true)
        );
        // A route through an unknown device, or without a gateway, is not one of ours.
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Gateway(_)));
        assert_eq!(route_of(&m, &names), None);
    }

    #[test]
    fn fdb_destinations_decode_from_raw_bytes() {
        let f = Fdb {
            mac: Mac([2, 0, 0, 0, 0, 9]),
            dst: Ipv4Addr::new(172, 18, 0, 3),
        };
        let mut m = fdb_msg(7, &f);
        assert_eq!(neigh_mac(&m), Some(f.mac));
        assert_eq!(neigh_dst(&m), Some(IpAddr::V4(f.dst)));
        // What the kernel's AF_BRIDGE dump decodes to.
        m.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Other(
            vec![172, 18, 0, 3],
        ))];
        assert_eq!(neigh_dst(&m), Some(IpAddr::V4(f.dst)));
        m.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Other(
            vec![1, 2],
        ))];
        assert_eq!(neigh_dst(&m), None);
    }
}
