//! CHECK for a node: compares what the node namespace has with what [`NodeNetwork`] says,
//! and lists every difference (an empty list means converged).

use kinet_netns::NetNs;

use crate::desired::{
    vtep_ip, vxlan_mtu, Backend, NodeNetwork, POD_BRIDGE, UNDERLAY_DEV, VXLAN_DEV,
};
use crate::nl;
use crate::node::{ip_forward, Underlay};
use crate::peers::check_peers;
use crate::Result;

/// The differences between node `node` and `net` (base links, VXLAN device, peer entries).
pub async fn check_node(node: &NetNs, u: &Underlay, net: &NodeNetwork) -> Result<Vec<String>> {
    let h = node.netlink_handle()?;
    let mut problems = Vec::new();
    let mut want_addr = |name: &str, l: Option<rtnetlink::packet_route::link::LinkMessage>| {
        let r = l.map(|l| (l.header.index, nl::is_up(&l), nl::link_mtu(&l)));
        if r.is_none() {
            problems.push(format!("{name} missing"));
        }
        r
    };
    let eth0 = want_addr(UNDERLAY_DEV, nl::link(&h, UNDERLAY_DEV).await?);
    let cbr0 = want_addr(POD_BRIDGE, nl::link(&h, POD_BRIDGE).await?);
    let vx = match net.backend {
        Backend::Vxlan => want_addr(VXLAN_DEV, nl::link(&h, VXLAN_DEV).await?),
        Backend::HostGw => None,
    };
    let expect = [
        (
            UNDERLAY_DEV,
            eth0,
            net.underlay_ip,
            u.cidr.prefix(),
            net.mtu,
        ),
        (
            POD_BRIDGE,
            cbr0,
            net.bridge_ip,
            net.pod_cidr.prefix(),
            net.pod_mtu(),
        ),
        (VXLAN_DEV, vx, vtep_ip(net.pod_cidr), 32, vxlan_mtu(net.mtu)),
    ];
    for (name, link, ip, prefix, mtu) in expect {
        let Some((idx, up, have_mtu)) = link else {
            continue;
        };
        if !up {
            problems.push(format!("{name} is down"));
        }
        if have_mtu != Some(mtu) {
            problems.push(format!("{name} mtu {have_mtu:?}, want {mtu}"));
        }
        if !nl::addrs(&h, idx).await?.contains(&(ip, prefix)) {
            problems.push(format!("{name} lacks {ip}/{prefix}"));
        }
    }
    if nl::default_route(&h).await?.map(|(gw, _)| gw) != Some(u.gateway) {
        problems.push(format!("default route is not via {}", u.gateway));
    }
    if !ip_forward(node)? {
        problems.push("net.ipv4.ip_forward is 0".into());
    }
    let p = check_peers(node, net).await?;
    for r in &p.add.routes {
        problems.push(format!(
            "missing route {} via {} dev {}",
            r.dst, r.via, r.dev
        ));
    }
    for r in &p.remove.routes {
        problems.push(format!("stale route {} via {} dev {}", r.dst, r.via, r.dev));
    }
    for n in &p.add.neighs {
        problems.push(format!("missing neighbour {} lladdr {}", n.ip, n.mac));
    }
    for n in &p.remove.neighs {
        problems.push(format!("stale neighbour {} lladdr {}", n.ip, n.mac));
    }
    for f in &p.add.fdb {
        problems.push(format!("missing fdb {} dst {}", f.mac, f.dst));
    }
    for f in &p.remove.fdb {
        problems.push(format!("stale fdb {} dst {}", f.mac, f.dst));
    }
    Ok(problems)
}
