//! Classifying a query name inside the cluster zone, per the Kubernetes DNS
//! schema (and CoreDNS's `parseRequest`).

use hickory_proto::rr::Name;

use crate::model::PortFilter;

/// What a name below the cluster zone refers to. All parts are lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ZoneName {
    Apex,
    /// `dns-version.<zone>`: the schema version TXT.
    DnsVersion,
    /// `ns.dns.<zone>`: the nameserver's own address.
    NsDns,
    /// `svc`, `pod`, `dns`, `<ns>.pod`: exist but hold no records.
    EmptyNonTerminal,
    /// `<ns>.svc.<zone>`: NODATA when the namespace exists, else NXDOMAIN.
    Namespace(String),
    /// `<a-b-c-d>.<ns>.pod.<zone>`.
    Pod {
        ns: String,
        pod: String,
    },
    /// `[<endpoint>.|_<port>._<proto>.]<svc>.<ns>.svc.<zone>`.
    Service {
        ns: String,
        svc: String,
        endpoint: Option<String>,
        port: Option<PortFilter>,
    },
    /// `_<proto>.<svc>.<ns>.svc.<zone>`: an empty non-terminal if the Service
    /// has a port with that protocol.
    ProtoNode {
        ns: String,
        svc: String,
        proto: String,
    },
    /// Anything else under the zone: NXDOMAIN.
    Unknown,
}

/// Labels of `name` below `zone`, lowercase, leftmost first; `None` if out of zone.
pub(crate) fn relative_labels(name: &Name, zone: &Name) -> Option<Vec<String>> {
    if !zone.zone_of(name) {
        return None;
    }
    let rel = usize::from(name.num_labels() - zone.num_labels());
    Some(
        name.iter()
            .take(rel)
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect(),
    )
}

fn underscored(l: &str) -> Option<&str> {
    l.strip_prefix('_').filter(|s| !s.is_empty())
}

pub(crate) fn classify(labels: &[String]) -> ZoneName {
    let s = |x: &str| x.to_string();
    match labels {
        [] => ZoneName::Apex,
        [v] if v == "dns-version" => ZoneName::DnsVersion,
        [n, d] if n == "ns" && d == "dns" => ZoneName::NsDns,
        [x] if x == "svc" || x == "pod" || x == "dns" => ZoneName::EmptyNonTerminal,
        [_, p] if p == "pod" => ZoneName::EmptyNonTerminal,
        [ns, k] if k == "svc" => ZoneName::Namespace(s(ns)),
        [pod, ns, k] if k == "pod" => ZoneName::Pod {
            ns: s(ns),
            pod: s(pod),
        },
        [svc, ns, k] if k == "svc" => ZoneName::Service {
            ns: s(ns),
            svc: s(svc),
            endpoint: None,
            port: None,
        },
        [ep, svc, ns, k] if k == "svc" => match underscored(ep) {
            Some(proto) => ZoneName::ProtoNode {
                ns: s(ns),
                svc: s(svc),
                proto: s(proto),
            },
            None => ZoneName::Service {
                ns: s(ns),
                svc: s(svc),
                endpoint: Some(s(ep)),
                port: None,
            },
        },
        [port, proto, svc, ns, k] if k == "svc" => match (underscored(port), underscored(proto)) {
            (Some(port), Some(proto)) => ZoneName::Service {
                ns: s(ns),
                svc: s(svc),
                endpoint: None,
                port: Some(PortFilter {
                    name: s(port),
                    proto: s(proto),
                }),
            },
            _ => ZoneName::Unknown,
        },
        _ => ZoneName::Unknown,
    }
}

/// CoreDNS "pods insecure": the pod label is the address with dashes.
/// Exactly three dashes and no `--` is IPv4; otherwise dashes are colons.
pub(crate) fn pod_ip(label: &str) -> Option<std::net::IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(q: &str) -> ZoneName {
        let zone = Name::from_ascii("cluster.local.").unwrap();
        let labels = relative_labels(&Name::from_ascii(q).unwrap(), &zone).unwrap();
        classify(&labels)
    }

    fn svc(ns: &str, svc: &str, ep: Option<&str>, port: Option<(&str, &str)>) -> ZoneName {
        ZoneName::Service {
            ns: ns.into(),
            svc: svc.into(),
            endpoint: ep.map(Into::into),
            port: port.map(|(n, p)| PortFilter {
                name: n.into(),
                proto: p.into(),
            }),
        }
    }

    #[test]
    fn classifies_schema_names() {
        let cases = [
            ("cluster.local.", ZoneName::Apex),
            ("CLUSTER.local.", ZoneName::Apex),
            ("dns-version.cluster.local.", ZoneName::DnsVersion),
            ("ns.dns.cluster.local.", ZoneName::NsDns),
            ("svc.cluster.local.", ZoneName::EmptyNonTerminal),
            ("pod.cluster.local.", ZoneName::EmptyNonTerminal),
            ("default.pod.cluster.local.", ZoneName::EmptyNonTerminal),
            (
                "default.svc.cluster.local.",
                ZoneName::Namespace("default".into()),
            ),
            (
                "10-1-2-3.Default.pod.cluster.local.",
                ZoneName::Pod {
                    ns: "default".into(),
                    pod: "10-1-2-3".into(),
                },
            ),
            (
                "Web.default.svc.cluster.local.",
                svc("default", "web", None, None),
            ),
            (
                "web-0.web.default.svc.cluster.local.",
                svc("default", "web", Some("web-0"), None),
            ),
            (
                "_HTTP._tcp.web.default.svc.cluster.local.",
                svc("default", "web", None, Some(("http", "tcp"))),
            ),
            (
                "_tcp.web.default.svc.cluster.local.",
                ZoneName::ProtoNode {
                    ns: "default".into(),
                    svc: "web".into(),
                    proto: "tcp".into(),
                },
            ),
            ("http.tcp.web.default.svc.cluster.local.", ZoneName::Unknown),
            ("a.b.c.d.e.default.svc.cluster.local.", ZoneName::Unknown),
            ("foo.cluster.local.", ZoneName::Unknown),
            ("web.default.other.cluster.local.", ZoneName::Unknown),
        ];
        for (q, want) in cases {
            assert_eq!(classify_str(q), want, "{q}");
        }
    }

    #[test]
    fn out_of_zone() {
        let zone = Name::from_ascii("cluster.local.").unwrap();
        for q in ["example.com.", "local.", "xcluster.local."] {
            assert!(
                relative_labels(&Name::from_ascii(q).unwrap(), &zone).is_none(),
                "{q}"
            );
        }
    }

    #[test]
    fn pod_ips() {
        let cases = [
            ("10-244-1-5", Some("10.244.1.5")),
            ("fd00--1", Some("fd00::1")),
            ("1-2-3", None),
            ("web-0", None),
            ("300-1-1-1", None),
        ];
        for (label, want) in cases {
            assert_eq!(pod_ip(label), want.map(|w| w.parse().unwrap()), "{label}");
        }
    }
}
