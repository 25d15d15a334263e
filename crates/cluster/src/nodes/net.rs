//! Applies a [`Plan`] with netlink, idempotently ("already exists" is success), and tears it
//! down. The only host-side changes are the host link and its route, plus, for an `--egress`
//! cluster only, its masquerade table (loaded with `nft`); everything else is made inside the
//! cluster's own namespaces through sockets opened there.

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use futures::TryStreamExt;
use kinet_cni::nl;
use kinet_ipam::Ipv4Cidr;
use kinet_netns::NetNs;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteScope, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{
    candidate_subnets, overlapping, pick_subnet, Exit, Plan, Route, HOST_PEER, OUTSIDE_VETH,
};
use crate::egress;

const MTU: u32 = 1500;
/// The kernel's local table (addresses of this host), not routes to compare with.
const RT_TABLE_LOCAL: u8 = 255;

/// A netlink handle on the host's own namespace (the one `kinet up` runs in).
fn host_handle() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().context("netlink socket")?;
    tokio::spawn(conn);
    Ok(handle)
}

fn open_or_create(name: &str) -> Result<NetNs> {
    match NetNs::create(name) {
        Ok(ns) => Ok(ns),
        Err(kinet_netns::Error::Exists(_)) => Ok(NetNs::open(name)?),
        Err(e) => Err(e).with_context(|| format!("creating network namespace {name}")),
    }
}

fn is_veth(m: &LinkMessage) -> bool {
    m.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))),
        _ => false,
    })
}

/// The host's IPv4 routes outside the local table: (destination, output link index).
async fn host_routes(h: &Handle) -> Result<Vec<(Ipv4Cidr, Option<u32>)>> {
    let all: Vec<_> = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .context("reading the host's routes")?;
    Ok(all
        .iter()
        .filter(|m| m.header.table != RT_TABLE_LOCAL)
        .filter_map(|m| {
            let len = m.header.destination_prefix_length;
            let dst = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                })
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            let oif = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            Ipv4Cidr::new(dst, len).ok().map(|c| (c, oif))
        })
        .collect())
}

/// The underlay addresses of the cluster's API servers past the first (`--api-servers`), on
/// the host link beside the gateway (see [`crate::apiservers`]). They go with the link.
pub async fn ensure_api_server_addrs(plan: &Plan, ips: &[Ipv4Addr]) -> Result<()> {
    let hh = host_handle()?;
    let link = nl::need_link(&hh, &plan.host_link).await?.header.index;
    for ip in ips {
        nl::ensure_addr(&hh, link, *ip, 32).await?;
    }
    Ok(())
}

/// Claims an underlay subnet on the host and builds the underlay: namespace, bridge, the host
/// link and its route. `recorded` is the subnet of an earlier `up` (kept across restarts);
/// without it the first free candidate is taken, skipping `reserved` (subnets other stopped
/// clusters will want back, see [`super::claims`]). Adding the route is the claim: the kernel
/// refuses a second identical route, so two concurrent `up`s never share a subnet.
pub async fn ensure_underlay(
    cluster: &str,
    recorded: Option<Ipv4Cidr>,
    reserved: &[Ipv4Cidr],
) -> Result<Ipv4Cidr> {
    let probe = Plan::new(cluster, recorded.unwrap_or(candidate_subnets()[0]), 0);
    let uns = open_or_create(&probe.underlay_netns)?;
    // The bridge has no address: the host link holds the gateway.
    let br = kinet_cni::ensure_underlay_bridge(&uns, &probe.underlay).await?;
    let uh = uns.netlink_handle()?;

    let hh = host_handle()?;
    nl::ensure_veth_into(&hh, &probe.host_link, HOST_PEER, &uns, &uh, MTU).await?;
    let peer = nl::need_link(&uh, HOST_PEER).await?.header.index;
    nl::set_link(&uh, peer, Some(MTU), Some(br)).await?;
    let host_link = nl::need_link(&hh, &probe.host_link).await?.header.index;
    nl::set_link(&hh, host_link, Some(MTU), None).await?;

    let routes = host_routes(&hh).await?;
    let ours: Vec<Ipv4Cidr> = routes
        .iter()
        .filter(|(_, oif)| *oif == Some(host_link))
        .map(|(c, _)| *c)
        .collect();
    let others: Vec<Ipv4Cidr> = routes
        .iter()
        .filter(|(_, oif)| *oif != Some(host_link))
        .map(|(c, _)| *c)
        .collect();
    let candidates = match recorded {
        Some(c) => {
            if let Some(r) = overlapping(&c, &others) {
                bail!(
                    "the underlay {c} of cluster \"{cluster}\" now overlaps the host route {r}; \
                     remove that route or recreate the cluster (kinet down, kinet up)"
                );
            }
            vec![c]
        }
        None => candidate_subnets()
            .into_iter()
            .filter(|c| !reserved.contains(c))
            .collect(),
    };
    let mut tried = Vec::new();
    let mut left = candidates.clone();
    while let Some(cidr) = pick_subnet(&left, &others) {
        left.retain(|c| *c != cidr);
        tried.push(cidr);
        let gw = Plan::new(cluster, cidr, 0).underlay.gateway;
        if !ours.contains(&cidr) {
            let msg = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(cidr.network(), cidr.prefix())
                .output_interface(host_link)
                .scope(RouteScope::Link)
                .build();
            match hh.route().add(msg).execute().await {
                Ok(()) => {}
                // Taken between our read and our add (another cluster starting): next one.
                Err(e) if nl::is_exists(&e) && recorded.is_none() => continue,
                Err(e) => {
                    return Err(anyhow!(
                        "adding the host route {cidr} dev {}: {e}",
                        probe.host_link
                    ))
                }
            }
        }
        // /32: the route above is the only route kinet adds; no kernel prefix route.
        nl::ensure_addr(&hh, host_link, gw, 32).await?;
        return Ok(cidr);
    }
    let _ = hh.link().del(host_link).execute().await;
    let _ = kinet_netns::delete(&probe.underlay_netns);
    match recorded {
        Some(c) => bail!("the underlay {c} is taken by another route on this host"),
        None => {
            let all = candidate_subnets();
            bail!(
                "no free underlay subnet: every candidate from {} to {} overlaps a route on this \
                 host (see `ip route`) or is kept by a stopped cluster ({})",
                all[0],
                all[all.len() - 1],
                super::claims::CLAIMS_DIR
            )
        }
    }
}

/// Creates (or completes) every node's namespace: `eth0` on the underlay bridge with the
/// node's address, `lo` up, a default route via the gateway (the host link).
pub async fn ensure_nodes(plan: &Plan) -> Result<()> {
    let uns = NetNs::open(&plan.underlay_netns)?;
    for node in &plan.nodes {
        let ns = open_or_create(&node.netns)?;
        kinet_cni::attach_to_underlay(&uns, &plan.underlay, &ns, &node.underlay_veth, node.ip)
            .await?;
        ensure_routes(&ns.netlink_handle()?, &plan.node_routes(), &node.netns).await?;
    }
    Ok(())
}

/// Makes `routes` the namespace's, each replacing any route to the same destination (such as
/// the default route via the gateway that kinet made before egress was isolated).
async fn ensure_routes(h: &Handle, routes: &[Route], netns: &str) -> Result<()> {
    for route in routes {
        let dst = route.destination;
        let msg =
            RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst.network(), dst.prefix());
        let msg = match route.exit {
            Exit::Via(gateway) => msg.gateway(gateway),
            Exit::Unreachable => msg.kind(RouteType::Unreachable),
        };
        h.route()
            .add(msg.build())
            .replace()
            .execute()
            .await
            .with_context(|| format!("route to {dst} ({:?}) in {netns}", route.exit))?;
    }
    Ok(())
}

/// Creates (or completes) the outside namespace: a client on the underlay that is no node,
/// `eth0` with the plan's outside address, a default route via the gateway.
pub async fn ensure_outside(plan: &Plan) -> Result<()> {
    let uns = NetNs::open(&plan.underlay_netns)?;
    let ns = open_or_create(&plan.outside_netns)?;
    kinet_cni::attach_to_underlay(&uns, &plan.underlay, &ns, OUTSIDE_VETH, plan.outside_ip).await?;
    let nh = ns.netlink_handle()?;
    ensure_routes(&nh, &[plan.default_route()], &plan.outside_netns).await
}

/// Loads `script` with `nft -f -` in the host's namespace (where `kinet up` runs).
async fn host_nft(script: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut nft = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (Debian/Ubuntu package nftables), which --egress needs")?;
    let mut stdin = nft.stdin.take().expect("stdin is piped");
    stdin.write_all(script.as_bytes()).await?;
    drop(stdin);
    let done = nft.wait_with_output().await?;
    if !done.status.success() {
        bail!("nft -f: {}", String::from_utf8_lossy(&done.stderr).trim());
    }
    Ok(())
}

/// With `--egress`, loads the host's masquerade table (again: the load replaces it whole).
pub async fn ensure_host_egress(plan: &Plan) -> Result<()> {
    if !plan.egress {
        return Ok(());
    }
    host_nft(&egress::host_ruleset(plan))
        .await
        .with_context(|| {
            format!(
                "loading the host's table ip {}",
                egress::host_table(&plan.cluster)
            )
        })
}

/// Removes the host's egress table (if `--egress`), the node namespaces, the outside and
/// underlay namespaces and the host link (its route and address go with it). Missing pieces
/// are fine.
pub async fn teardown(plan: &Plan) -> Result<()> {
    // A failure here must not keep the namespaces and the link: reported after them.
    let host_table = if plan.egress {
        host_nft(&egress::host_ruleset_removal(&plan.cluster))
            .await
            .with_context(|| {
                format!(
                    "deleting the host's table ip {}",
                    egress::host_table(&plan.cluster)
                )
            })
    } else {
        Ok(())
    };
    kinet_netns::delete(&plan.outside_netns)
        .with_context(|| format!("deleting network namespace {}", plan.outside_netns))?;
    for node in &plan.nodes {
        kinet_netns::delete(&node.netns)
            .with_context(|| format!("deleting network namespace {}", node.netns))?;
    }
    let hh = host_handle()?;
    if let Some(l) = nl::link(&hh, &plan.host_link).await? {
        if !is_veth(&l) {
            bail!(
                "host link {} is not a veth; not touching it",
                plan.host_link
            );
        }
        match hh.link().del(l.header.index).execute().await {
            Ok(()) => {}
            // Went with the underlay namespace meanwhile.
            Err(e) if nl::is_missing(&e) => {}
            Err(e) => return Err(anyhow!("deleting host link {}: {e}", plan.host_link)),
        }
    }
    kinet_netns::delete(&plan.underlay_netns)
        .with_context(|| format!("deleting network namespace {}", plan.underlay_netns))?;
    host_table
}
