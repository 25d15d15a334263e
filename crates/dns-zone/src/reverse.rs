//! PTR answers in `in-addr.arpa` / `ip6.arpa` for Service and endpoint IPs.
//!
//! As with CoreDNS's `fallthrough in-addr.arpa ip6.arpa`, only addresses we
//! know are ours; every other reverse name is left to the upstream.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::answer::{soa_record, Answer};
use crate::view::ClusterView;

/// The address a full-length reverse name stands for.
pub(crate) fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let mut fqdn = name.clone();
    fqdn.set_fqdn(true);
    let net = fqdn.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Names for `ip`: the Service owning it as a cluster IP (first match, as
/// CoreDNS), else `<hostname-or-dashed-ip>.<svc>.<ns>.svc.<zone>` for every
/// published endpoint carrying it.
pub(crate) fn ptr_names(view: &ClusterView, ip: &IpAddr) -> Vec<Name> {
    let zone = &view.zone_str;
    if let Some((ns, name)) = view.service_ips.get(ip).and_then(|o| o.as_slice().first()) {
        return Name::from_ascii(format!("{name}.{ns}.svc.{zone}."))
            .into_iter()
            .collect();
    }
    let mut out: Vec<Name> = Vec::new();
    for (ns, slice_name) in view
        .endpoint_ips
        .get(ip)
        .into_iter()
        .flat_map(|o| o.as_slice())
    {
        let Some(space) = view.namespaces.get(ns) else {
            continue;
        };
        let Some(slice) = space.slices.get(slice_name) else {
            continue;
        };
        let svc = &slice.service;
        let publish_all = space.services.get(svc).is_some_and(|s| s.publish_not_ready);
        for ep in slice.endpoints.iter() {
            if !(ep.ready || publish_all) || !ep.addrs.contains(ip) {
                continue;
            }
            let label = ep.label_for(ip);
            if let Ok(n) = Name::from_ascii(format!("{label}.{svc}.{ns}.svc.{zone}.")) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// `None` when the name is not a reverse name for an address we know.
pub(crate) fn answer(view: &ClusterView, name: &Name, qtype: RecordType) -> Option<Answer> {
    let ip = reverse_ip(name)?;
    let targets = ptr_names(view, &ip);
    if targets.is_empty() {
        return None;
    }
    if qtype != RecordType::PTR {
        let zone = Name::from_ascii(if ip.is_ipv4() {
            "in-addr.arpa."
        } else {
            "ip6.arpa."
        })
        .expect("static name");
        return Some(Answer::negative(
            ResponseCode::NoError,
            soa_record(view, &zone),
        ));
    }
    let answers = targets
        .into_iter()
        .map(|t| Record::from_rdata(name.clone(), view.ttl, RData::PTR(PTR(t))))
        .collect();
    Some(Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        authority: Vec::new(),
        additionals: Vec::new(),
        in_zone: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{service, slice};
    use serde_json::json;

    fn view() -> ClusterView {
        let mut v = ClusterView::new("cluster.local").unwrap();
        v.upsert_service(&service(
            "default",
            "kubernetes",
            json!({"clusterIP": "10.96.0.1"}),
        ));
        v.upsert_service(&service("default", "db", json!({"clusterIP": "None"})));
        v.upsert_slice(&slice(
            "default",
            "db-x",
            "db",
            "IPv4",
            json!([]),
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "db-0"},
                {"addresses": ["10.244.1.6"]},
                {"addresses": ["10.244.1.7"], "conditions": {"ready": false}},
            ]),
        ));
        v.upsert_service(&service("v6", "api", json!({"clusterIP": "fd00::10"})));
        v
    }

    #[test]
    fn reverse_names_parse() {
        let cases = [
            ("1.0.96.10.in-addr.arpa.", Some("10.96.0.1")),
            ("1.0.96.10.IN-ADDR.ARPA", Some("10.96.0.1")),
            ("0.96.10.in-addr.arpa.", None),
            ("example.com.", None),
        ];
        for (q, want) in cases {
            let got = reverse_ip(&Name::from_ascii(q).unwrap());
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{q}");
        }
    }

    #[test]
    fn ptr_answers() {
        let v = view();
        let v6 = Name::from(IpAddr::from(
            "fd00::10".parse::<std::net::Ipv6Addr>().unwrap(),
        ));
        let cases: Vec<(Name, Option<Vec<&str>>)> = vec![
            (
                Name::from_ascii("1.0.96.10.in-addr.arpa.").unwrap(),
                Some(vec!["kubernetes.default.svc.cluster.local."]),
            ),
            (
                Name::from_ascii("5.1.244.10.in-addr.arpa.").unwrap(),
                Some(vec!["db-0.db.default.svc.cluster.local."]),
            ),
            (
                Name::from_ascii("6.1.244.10.in-addr.arpa.").unwrap(),
                Some(vec!["10-244-1-6.db.default.svc.cluster.local."]),
            ),
            // Not ready: not ours to name.
            (Name::from_ascii("7.1.244.10.in-addr.arpa.").unwrap(), None),
            (Name::from_ascii("8.8.8.8.in-addr.arpa.").unwrap(), None),
            (v6, Some(vec!["api.v6.svc.cluster.local."])),
        ];
        for (q, want) in cases {
            let got = answer(&v, &q, RecordType::PTR).map(|a| {
                a.answers
                    .iter()
                    .map(|r| match &r.data {
                        RData::PTR(p) => p.0.to_ascii(),
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect::<Vec<_>>()
            });
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{q}");
        }
    }

    #[test]
    fn publish_not_ready_names_unready_endpoints() {
        let mut v = view();
        let q = Name::from_ascii("7.1.244.10.in-addr.arpa.").unwrap();
        assert!(answer(&v, &q, RecordType::PTR).is_none());
        v.upsert_service(&service(
            "default",
            "db",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
        ));
        let a = answer(&v, &q, RecordType::PTR).unwrap();
        assert_eq!(
            a.answers[0].data.to_string(),
            "10-244-1-7.db.default.svc.cluster.local."
        );
    }

    #[test]
    fn other_types_on_known_reverse_name_are_nodata() {
        let v = view();
        let q = Name::from_ascii("1.0.96.10.in-addr.arpa.").unwrap();
        let a = answer(&v, &q, RecordType::A).unwrap();
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(a.authority[0].name.to_ascii(), "in-addr.arpa.");
    }
}
