//! The common query answered without hickory: an A, AAAA or other plain
//! question about a Service (or a name that does not exist) is read from the
//! wire, looked up in the view and written straight out, byte for byte what
//! [`crate::respond_wire`] sends. A cache miss then costs about what a hit
//! does. Everything else (SRV, PTR, ANY, the apex, ExternalName aliases,
//! endpoint names, truncation) is `None`: the caller takes the full path.

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use crate::answer::SOA_TIMERS;
use crate::model::SvcKind;
use crate::qname::pod_ip;
use crate::view::ClusterView;
use crate::wire_query::{parse, WireQuery};
use crate::wire_write::{Writer, TYPE_A, TYPE_AAAA};
use crate::DEFAULT_UDP_PAYLOAD;

const HEADER_LEN: u16 = 12;
const CLASSIC_UDP_LIMIT: usize = 512;
/// hickory compresses only the first 120 names of a message; staying below
/// keeps the bytes identical (and far more never fit a UDP response anyway).
const MAX_ANSWERS: usize = 100;

/// Types answered here. The rest need the full path: SRV and ANY render
/// differently, PTR may be a reverse name, AXFR/IXFR are refused, and meta
/// types are best left to it.
fn quick_type(t: u16) -> bool {
    t != 0 && t < 128 && !matches!(t, 12 | 33 | 41)
}

/// What a name comes to, before the type is considered.
enum Found<'v> {
    NxDomain,
    /// Exists; these addresses (maybe with duplicates), in answer order.
    Addrs(Cow<'v, [IpAddr]>),
}

/// Answer `query` into `out` (cleared first) and return the rcode, or `None`
/// when the full path must answer it (then `out` holds nothing useful).
/// `max_udp` is as for [`crate::respond`].
pub fn respond_fast(
    view: &ClusterView,
    query: &[u8],
    max_udp: Option<usize>,
    out: &mut Vec<u8>,
) -> Option<ResponseCode> {
    let q = parse(query)?;
    if !quick_type(q.qtype) {
        return None;
    }
    let below = q.name.labels_below(&view.zone_wire)?;
    let found = find(view, &q, below)?;
    let limit = match max_udp {
        Some(ours) => {
            let client = q
                .edns_payload
                .map_or(CLASSIC_UDP_LIMIT, |p| usize::from(p).max(CLASSIC_UDP_LIMIT));
            ours.min(client)
        }
        None => usize::from(u16::MAX),
    };
    let payload = max_udp.map_or(DEFAULT_UDP_PAYLOAD, |m| {
        u16::try_from(m).unwrap_or(u16::MAX).max(512)
    });
    let rcode = write(view, &q, &found, payload, out)?;
    (out.len() <= limit).then_some(rcode)
}

/// Mirrors `qname::classify` followed by `lookup::resolve` for the names it
/// handles; `None` for the others.
fn find<'v>(view: &'v ClusterView, q: &WireQuery<'_>, below: usize) -> Option<Found<'v>> {
    let l = |i: usize| q.name.label(i);
    let exists = |ns: &str, svc: &str| view.service(ns, svc).is_some();
    let none = || Found::Addrs(Cow::Borrowed(&[]));
    let found = match below {
        // The apex and `dns-version` have records of their own.
        0 => return None,
        1 if l(0) == "dns-version" => return None,
        1 if matches!(l(0), "svc" | "pod" | "dns") => none(),
        2 if l(0) == "ns" && l(1) == "dns" => return None,
        2 if l(1) == "pod" => none(),
        2 if l(1) == "svc" => match view.namespace_exists(l(0)) {
            true => none(),
            false => Found::NxDomain,
        },
        3 if l(2) == "pod" => match pod_ip(l(0)) {
            Some(ip) => Found::Addrs(Cow::Owned(vec![ip])),
            None => Found::NxDomain,
        },
        3 if l(2) == "svc" => service(view, l(1), l(0))?,
        // Endpoint, port and protocol names of a missing Service do not
        // exist; those of a present one need the full path.
        4 | 5 if l(below - 1) == "svc" && exists(l(below - 2), l(below - 3)) => return None,
        _ => Found::NxDomain,
    };
    Some(found)
}

/// `lookup::service` without endpoint or port: every cluster IP, or every
/// published endpoint address (none at all: NXDOMAIN).
fn service<'v>(view: &'v ClusterView, ns: &str, name: &str) -> Option<Found<'v>> {
    let Some((space, rec)) = view.service(ns, name) else {
        return Some(Found::NxDomain);
    };
    let addrs = match &rec.kind {
        SvcKind::ClusterIp(ips) => Cow::Borrowed(ips.as_slice()),
        SvcKind::Headless => {
            let mut all = Vec::new();
            for slice in space.slices_of(name) {
                for ep in slice.endpoints.iter() {
                    if ep.ready || rec.publish_not_ready {
                        all.extend_from_slice(&ep.addrs);
                    }
                }
            }
            if all.is_empty() {
                return Some(Found::NxDomain);
            }
            Cow::Owned(all)
        }
        SvcKind::Unanswerable => return Some(Found::NxDomain),
        // A CNAME, maybe chased through the zone.
        SvcKind::External(_) => return None,
    };
    Some(Found::Addrs(addrs))
}

/// The response for `found`; `None` when it is too large to match hickory.
fn write(
    view: &ClusterView,
    q: &WireQuery<'_>,
    found: &Found<'_>,
    payload: u16,
    out: &mut Vec<u8>,
) -> Option<ResponseCode> {
    let want_v6 = match q.qtype {
        TYPE_A => Some(false),
        TYPE_AAAA => Some(true),
        _ => None,
    };
    let addrs: &[IpAddr] = match found {
        Found::Addrs(a) => &a[..],
        Found::NxDomain => &[],
    };
    if addrs.len() > MAX_ANSWERS {
        return None;
    }
    let mut w = Writer::new(out);
    w.bytes(&q.id);
    w.bytes(&[0x84 | u8::from(q.rd), 0x80 | if q.cd { 0x10 } else { 0 }]);
    w.bytes(&[0, 1, 0, 0, 0, 0, 0, 0]);
    w.bytes(q.question);
    let mut answers = 0u16;
    if let Some(v6) = want_v6 {
        for (i, ip) in addrs.iter().enumerate() {
            if ip.is_ipv6() == v6 && !addrs[..i].contains(ip) {
                w.addr(HEADER_LEN, view.ttl, ip);
                answers += 1;
            }
        }
    }
    let rcode = match found {
        Found::NxDomain => ResponseCode::NXDomain,
        Found::Addrs(_) => ResponseCode::NoError,
    };
    let negative = answers == 0;
    if negative {
        let names = [&*view.zone_wire, &*view.ns_wire, &*view.hostmaster_wire];
        let [refresh, retry, expire] = SOA_TIMERS.map(|t| t as u32);
        let values = [view.serial, refresh, retry, expire, view.ttl];
        let question = (usize::from(HEADER_LEN), &q.question[..q.question.len() - 5]);
        w.soa(question, names, view.ttl.min(300), values);
    }
    if q.edns_payload.is_some() {
        w.opt(payload);
    }
    w.set_u16(6, answers);
    w.set_u16(8, u16::from(negative));
    w.set_u16(10, u16::from(q.edns_payload.is_some()));
    out[3] |= rcode.low();
    Some(rcode)
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
