//! `answer`: one question against the cluster view, rendered as records.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::lookup::{resolve, Resolved, Target};
use crate::qname::{classify, relative_labels, ZoneName};
use crate::reverse;
use crate::view::ClusterView;

/// The Kubernetes DNS schema version served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS serves the schema version with this TTL.
const VERSION_TTL: u32 = 28800;
/// CNAME chains inside the zone are followed at most this deep (CoreDNS: 8).
const MAX_CHASE: usize = 8;

/// The result of one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// False when the name is neither in the cluster zone nor a reverse name we
    /// own; the server should forward it (or refuse without an upstream).
    pub in_zone: bool,
}

impl Answer {
    fn out_of_zone() -> Self {
        Answer {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            in_zone: false,
        }
    }

    fn ok(answers: Vec<Record>, additionals: Vec<Record>) -> Self {
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
            additionals,
            in_zone: true,
        }
    }

    /// NODATA or NXDOMAIN, with the zone's SOA for negative caching.
    pub(crate) fn negative(rcode: ResponseCode, soa: Record) -> Self {
        Answer {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![soa],
            additionals: Vec::new(),
            in_zone: true,
        }
    }
}

/// Answer one question about `name` (any case; answers echo it).
pub fn answer(view: &ClusterView, name: &Name, qtype: RecordType) -> Answer {
    answer_at(view, name, qtype, 0)
}

fn answer_at(view: &ClusterView, name: &Name, qtype: RecordType, depth: usize) -> Answer {
    let Some(labels) = relative_labels(name, &view.zone) else {
        return reverse::answer(view, name, qtype).unwrap_or_else(Answer::out_of_zone);
    };
    let zn = classify(&labels);
    let soa = || soa_record(view, &view.zone);
    match (&zn, qtype) {
        (ZoneName::Apex, RecordType::SOA) => return Answer::ok(vec![soa()], Vec::new()),
        (ZoneName::Apex, RecordType::NS) => return ns_answer(view, name),
        (ZoneName::DnsVersion, RecordType::TXT) => {
            let txt = TXT::new(vec![SCHEMA_VERSION.to_string()]);
            let rec = Record::from_rdata(name.clone(), VERSION_TTL, RData::TXT(txt));
            return Answer::ok(vec![rec], Vec::new());
        }
        _ => {}
    }
    let targets = match resolve(view, &zn) {
        Resolved::NxDomain => return Answer::negative(ResponseCode::NXDomain, soa()),
        Resolved::Targets(t) => t,
    };
    let base = match &zn {
        ZoneName::Service { ns, svc, .. } => Some(format!("{svc}.{ns}.svc.{}.", view.zone_str)),
        _ => None,
    };
    let (answers, additionals) = render(view, name, qtype, &targets, base.as_deref(), depth);
    if answers.is_empty() {
        Answer::negative(ResponseCode::NoError, soa())
    } else {
        Answer::ok(answers, additionals)
    }
}

/// Records of `qtype` for the resolved targets; `(answers, additionals)`.
fn render(
    view: &ClusterView,
    qname: &Name,
    qtype: RecordType,
    targets: &[Target],
    base: Option<&str>,
    depth: usize,
) -> (Vec<Record>, Vec<Record>) {
    let ttl = view.ttl;
    if let Some(alias) = targets.iter().find_map(|t| match t {
        Target::Alias(n) => Some(n),
        Target::Addr { .. } => None,
    }) {
        return (alias_chain(view, qname, qtype, alias, depth), Vec::new());
    }
    let addrs = |v6: bool| -> Vec<Record> {
        let mut seen = HashSet::new();
        targets
            .iter()
            .filter_map(|t| match t {
                Target::Addr { ip, .. } if ip.is_ipv6() == v6 && seen.insert(*ip) => {
                    Some(addr_record(qname.clone(), ttl, *ip))
                }
                _ => None,
            })
            .collect()
    };
    match qtype {
        RecordType::A => (addrs(false), Vec::new()),
        RecordType::AAAA => (addrs(true), Vec::new()),
        RecordType::ANY => {
            let mut all = addrs(false);
            all.extend(addrs(true));
            (all, Vec::new())
        }
        RecordType::SRV => match base {
            Some(base) => srv(qname, ttl, targets, base),
            None => (Vec::new(), Vec::new()),
        },
        _ => (Vec::new(), Vec::new()),
    }
}

/// An ExternalName answers every type with its CNAME (RFC 1034 3.6.2); a
/// target inside our zone is followed so the client gets a complete answer.
fn alias_chain(
    view: &ClusterView,
    qname: &Name,
    qtype: RecordType,
    alias: &Name,
    depth: usize,
) -> Vec<Record> {
    // x CNAME x is a loop; CoreDNS drops it too.
    if alias.eq_ignore_root(qname) {
        return Vec::new();
    }
    let cname = Record::from_rdata(qname.clone(), view.ttl, RData::CNAME(CNAME(alias.clone())));
    let mut out = vec![cname];
    let chase = !matches!(qtype, RecordType::CNAME | RecordType::ANY)
        && depth < MAX_CHASE
        && view.zone.zone_of(alias);
    if chase {
        out.extend(answer_at(view, alias, qtype, depth + 1).answers);
    }
    out
}

fn addr_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, rdata)
}

/// SRV per CoreDNS: priority 0, weight `100 / n` (at least 1) over all
/// targets, one record per distinct (target, port), addresses in additional.
fn srv(qname: &Name, ttl: u32, targets: &[Target], base: &str) -> (Vec<Record>, Vec<Record>) {
    let weight = u16::try_from(100 / targets.len().max(1))
        .unwrap_or(1)
        .max(1);
    let (mut answers, mut extra) = (Vec::new(), Vec::new());
    let (mut seen_srv, mut seen_addr) = (HashSet::new(), HashSet::new());
    for t in targets {
        let Target::Addr {
            ip,
            host,
            port: Some(port),
        } = t
        else {
            continue;
        };
        let target = match host {
            Some(h) => format!("{h}.{base}"),
            None => base.to_string(),
        };
        let Ok(target_name) = Name::from_ascii(&target) else {
            continue;
        };
        if seen_srv.insert((target.clone(), *port)) {
            let rdata = SRV::new(0, weight, *port, target_name.clone());
            answers.push(Record::from_rdata(qname.clone(), ttl, RData::SRV(rdata)));
        }
        if seen_addr.insert((target, *ip)) {
            extra.push(addr_record(target_name, ttl, *ip));
        }
    }
    (answers, extra)
}

/// `ns.dns.<zone>` for the apex, with its addresses in additional.
fn ns_answer(view: &ClusterView, qname: &Name) -> Answer {
    let ns_name = ns_dns(&view.zone);
    let ns = Record::from_rdata(qname.clone(), view.ttl, RData::NS(NS(ns_name.clone())));
    let extra = view
        .nameserver_addrs()
        .into_iter()
        .map(|ip| addr_record(ns_name.clone(), view.ttl, ip))
        .collect();
    Answer::ok(vec![ns], extra)
}

pub(crate) fn ns_dns(zone: &Name) -> Name {
    let mut n = Name::from_ascii("ns.dns").expect("static name");
    n = n.append_domain(zone).unwrap_or_else(|_| zone.clone());
    n
}

pub(crate) fn hostmaster(zone: &Name) -> Name {
    Name::from_ascii("hostmaster")
        .expect("static name")
        .append_domain(zone)
        .unwrap_or_else(|_| zone.clone())
}

/// The SOA's refresh, retry and expire, as CoreDNS sets them.
pub(crate) const SOA_TIMERS: [i32; 3] = [7200, 1800, 86400];

/// The SOA CoreDNS builds: `ns.dns.<zone> hostmaster.<zone>`, refresh 7200,
/// retry 1800, expire 86400, minimum and TTL the record TTL (capped at 300).
pub(crate) fn soa_record(view: &ClusterView, zone: &Name) -> Record {
    let [refresh, retry, expire] = SOA_TIMERS;
    let soa = SOA::new(
        ns_dns(zone),
        hostmaster(zone),
        view.serial,
        refresh,
        retry,
        expire,
        view.ttl,
    );
    Record::from_rdata(zone.clone(), view.ttl.min(300), RData::SOA(soa))
}

#[cfg(test)]
#[path = "answer_tests.rs"]
pub(crate) mod tests;
