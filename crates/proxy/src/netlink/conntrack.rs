//! Stale UDP flows, deleted over ctnetlink (no `conntrack` program). UDP has no teardown,
//! so conntrack keeps sending a client's datagrams to the endpoint it was DNATed to even
//! after the endpoint left the Service; kube-proxy deletes those entries, as
//! `conntrack -D -p udp --dst-nat <ip> --reply-port-src <port>` would. The table is dumped
//! (IPv4 only), the matching entries picked (pure: [`stale_flows`]) and each deleted by its
//! original tuple.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::read::{attrs, get};
use super::socket::{NftSocket, Reply};
use super::wire::Writer;
use super::NetlinkError;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const AF_INET: u8 = 2;
const UDP: u8 = 17;

// `enum ctattr_type`, `ctattr_tuple`, `ctattr_ip`, `ctattr_l4proto`.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;

/// One direction of a flow.
#[derive(Debug, PartialEq, Eq)]
struct Tuple {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    src_port: u16,
}

fn tuple(buf: &[u8]) -> Option<Tuple> {
    let a = attrs(buf).ok()?;
    let ip = attrs(get(&a, CTA_TUPLE_IP)?).ok()?;
    let proto = attrs(get(&a, CTA_TUPLE_PROTO)?).ok()?;
    let addr = |v: &[u8]| Some(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?));
    Some(Tuple {
        src: addr(get(&ip, CTA_IP_V4_SRC)?)?,
        dst: addr(get(&ip, CTA_IP_V4_DST)?)?,
        proto: *get(&proto, CTA_PROTO_NUM)?.first()?,
        src_port: u16::from_be_bytes(get(&proto, CTA_PROTO_SRC_PORT)?.get(..2)?.try_into().ok()?),
    })
}

/// Of a conntrack dump's entries (the attributes after the nfgenmsg header), those of UDP
/// flows DNATed to `ep`: what to send back to delete each (its original tuple and zone).
pub(crate) fn stale_flows(entries: &[Vec<u8>], ep: SocketAddrV4) -> Vec<Vec<(u16, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in entries {
        let Ok(a) = attrs(e) else { continue };
        let (Some(orig), Some(reply)) = (get(&a, CTA_TUPLE_ORIG), get(&a, CTA_TUPLE_REPLY)) else {
            continue;
        };
        let (Some(o), Some(r)) = (tuple(orig), tuple(reply)) else {
            continue;
        };
        // The reply comes from the endpoint; DNATed means the client aimed elsewhere.
        let dnat_to_ep =
            r.src == *ep.ip() && r.src_port == ep.port() && o.dst != r.src && o.proto == UDP;
        if dnat_to_ep {
            let mut key = vec![(CTA_TUPLE_ORIG, orig.to_vec())];
            key.extend(get(&a, CTA_ZONE).map(|z| (CTA_ZONE, z.to_vec())));
            out.push(key);
        }
    }
    out
}

impl NftSocket {
    /// Deletes the conntrack entries of UDP flows DNATed to `ep`; returns how many.
    pub fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize, NetlinkError> {
        let get = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
        let entries = match self.request_in(get, AF_INET, true, |_| {})? {
            Reply::Messages(m) => m,
            Reply::Missing => Vec::new(),
        };
        let stale = stale_flows(&entries, ep);
        let delete = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        for key in &stale {
            // Gone already (expired, or deleted by someone else) is fine.
            self.request_in(delete, AF_INET, false, |w: &mut Writer| {
                for (ty, v) in key {
                    w.nest(*ty, |w| w.raw(v));
                }
            })?;
        }
        Ok(stale.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple_attr(w: &mut Writer, ty: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) {
        w.nest(ty, |w| {
            w.nest(CTA_TUPLE_IP, |w| {
                w.bytes(CTA_IP_V4_SRC, &src);
                w.bytes(CTA_IP_V4_DST, &dst);
            });
            w.nest(CTA_TUPLE_PROTO, |w| {
                w.bytes(CTA_PROTO_NUM, &[UDP]);
                w.bytes(CTA_PROTO_SRC_PORT, &sport.to_be_bytes());
                w.bytes(3, &dport.to_be_bytes());
            });
        });
    }

    /// A UDP flow from 10.244.1.10:40000 to `to`:53, answered by `by`:`port`.
    fn flow(to: [u8; 4], by: [u8; 4], port: u16) -> Vec<u8> {
        let mut w = Writer::default();
        tuple_attr(&mut w, CTA_TUPLE_ORIG, [10, 244, 1, 10], to, 40000, 53);
        tuple_attr(&mut w, CTA_TUPLE_REPLY, by, [10, 244, 1, 10], port, 40000);
        w.buf
    }

    #[test]
    fn only_udp_flows_dnated_to_the_endpoint_are_stale() {
        let ep: SocketAddrV4 = "10.244.1.20:5353".parse().unwrap();
        let service = [10, 96, 0, 10];
        let entries = vec![
            flow(service, [10, 244, 1, 20], 5353), // DNATed to ep: stale
            flow(service, [10, 244, 1, 21], 5353), // another endpoint
            flow(service, [10, 244, 1, 20], 5354), // another port
            flow([10, 244, 1, 20], [10, 244, 1, 20], 5353), // straight to the pod
        ];
        let stale = stale_flows(&entries, ep);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0][0].0, CTA_TUPLE_ORIG);
        let orig = tuple(&stale[0][0].1).unwrap();
        assert_eq!(orig.dst, Ipv4Addr::from(service));
    }
}
