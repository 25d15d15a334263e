//! Resolving a classified zone name to what it points at, independent of the
//! query type (CoreDNS's `Records`/`findServices`). The answer module then
//! renders these targets as A, AAAA, SRV or CNAME records.

use std::net::IpAddr;

use hickory_proto::rr::Name;

use crate::model::{PortFilter, SvcKind};
use crate::qname::{pod_ip, ZoneName};
use crate::view::{ClusterView, Namespace};

/// One thing a name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address. `host` is the SRV target label under the Service
    /// (`None`: the Service name itself); `port` is `None` when unknown.
    Addr {
        ip: IpAddr,
        host: Option<String>,
        port: Option<u16>,
    },
    /// An alias (ExternalName Service).
    Alias(Name),
}

/// The outcome for a name, before the query type is considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The name does not exist.
    NxDomain,
    /// The name exists; these are its targets (maybe none).
    Targets(Vec<Target>),
}

pub(crate) fn resolve(view: &ClusterView, name: &ZoneName) -> Resolved {
    match name {
        ZoneName::Apex | ZoneName::DnsVersion | ZoneName::EmptyNonTerminal => {
            Resolved::Targets(Vec::new())
        }
        ZoneName::NsDns => Resolved::Targets(
            view.nameserver_addrs()
                .into_iter()
                .map(|ip| Target::Addr {
                    ip,
                    host: None,
                    port: None,
                })
                .collect(),
        ),
        ZoneName::Namespace(ns) if view.namespace_exists(ns) => Resolved::Targets(Vec::new()),
        ZoneName::Namespace(_) | ZoneName::Unknown => Resolved::NxDomain,
        ZoneName::Pod { pod, .. } => match pod_ip(pod) {
            Some(ip) => Resolved::Targets(vec![Target::Addr {
                ip,
                host: None,
                port: None,
            }]),
            None => Resolved::NxDomain,
        },
        ZoneName::ProtoNode { ns, svc, proto } => proto_node(view, ns, svc, proto),
        ZoneName::Service {
            ns,
            svc,
            endpoint,
            port,
        } => service(view, ns, svc, endpoint.as_deref(), port.as_ref()),
    }
}

/// `_<proto>.<svc>...` exists only as the parent of some `_<port>._<proto>` name.
fn proto_node(view: &ClusterView, ns: &str, svc: &str, proto: &str) -> Resolved {
    let exists = view
        .service(ns, svc)
        .is_some_and(|(space, rec)| match rec.kind {
            SvcKind::ClusterIp(_) => rec
                .ports
                .iter()
                .any(|p| !p.name.is_empty() && p.proto.label() == proto),
            SvcKind::Headless => space
                .slices_of(svc)
                .flat_map(|s| s.ports.iter())
                .any(|p| !p.name.is_empty() && p.proto.label() == proto),
            SvcKind::External(_) | SvcKind::Unanswerable => false,
        });
    if exists {
        Resolved::Targets(Vec::new())
    } else {
        Resolved::NxDomain
    }
}

fn service(
    view: &ClusterView,
    ns: &str,
    svc: &str,
    endpoint: Option<&str>,
    port: Option<&PortFilter>,
) -> Resolved {
    let Some((space, rec)) = view.service(ns, svc) else {
        return Resolved::NxDomain;
    };
    match &rec.kind {
        // External services have no endpoints or ports to qualify.
        SvcKind::External(target) if endpoint.is_none() && port.is_none() => {
            Resolved::Targets(vec![Target::Alias((**target).clone())])
        }
        SvcKind::External(_) | SvcKind::Unanswerable => Resolved::NxDomain,
        SvcKind::Headless => endpoints(space, svc, rec.publish_not_ready, endpoint, port),
        SvcKind::ClusterIp(_) if endpoint.is_some() => {
            endpoints(space, svc, rec.publish_not_ready, endpoint, port)
        }
        SvcKind::ClusterIp(ips) => {
            let mut ports: Vec<Option<u16>> = rec
                .ports
                .iter()
                .filter(|p| p.matches(port))
                .map(|p| Some(p.port))
                .collect();
            // A Service without ports still has its address (CoreDNS would say
            // NXDOMAIN, but the API server never admits such a ClusterIP Service).
            if rec.ports.is_empty() && port.is_none() {
                ports.push(None);
            }
            if ports.is_empty() {
                return Resolved::NxDomain;
            }
            let targets = ports
                .iter()
                .flat_map(|port| {
                    ips.iter().map(|ip| Target::Addr {
                        ip: *ip,
                        host: None,
                        port: *port,
                    })
                })
                .collect();
            Resolved::Targets(targets)
        }
    }
}

/// Published endpoints of `svc`, one target per address and matching port.
/// None at all is NXDOMAIN, as in CoreDNS (a headless Service without ready
/// endpoints does not resolve).
fn endpoints(
    space: &Namespace,
    svc: &str,
    publish_not_ready: bool,
    endpoint: Option<&str>,
    port: Option<&PortFilter>,
) -> Resolved {
    let mut targets = Vec::new();
    for slice in space.slices_of(svc) {
        // A slice without ports still yields addresses (CoreDNS's port -1 sentinel).
        let ports: Vec<Option<u16>> = if slice.ports.is_empty() {
            if port.is_some() {
                continue;
            }
            vec![None]
        } else {
            slice
                .ports
                .iter()
                .filter(|p| p.matches(port))
                .map(|p| Some(p.port))
                .collect()
        };
        for ep in slice.endpoints.iter() {
            if !(ep.ready || publish_not_ready) {
                continue;
            }
            for ip in ep.addrs.iter() {
                let host = ep.label_for(ip);
                if endpoint.is_some_and(|e| e != host) {
                    continue;
                }
                for p in &ports {
                    targets.push(Target::Addr {
                        ip: *ip,
                        host: Some(host.clone()),
                        port: *p,
                    });
                }
            }
        }
    }
    if targets.is_empty() {
        Resolved::NxDomain
    } else {
        Resolved::Targets(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qname::{classify, relative_labels};
    use crate::testutil::{ready, service, slice};
    use serde_json::json;

    fn view() -> ClusterView {
        let mut v = ClusterView::new("cluster.local").unwrap();
        v.upsert_service(&service(
            "default",
            "web",
            json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}),
        ));
        v.upsert_service(&service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ));
        v.upsert_slice(&slice(
            "default",
            "db-1",
            "db",
            "IPv4",
            json!([{"name": "pg", "port": 5432}]),
            json!([
                {"addresses": ["10.244.0.5"], "hostname": "db-0"},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false}},
            ]),
        ));
        v.upsert_slice(&slice(
            "default",
            "web-1",
            "web",
            "IPv4",
            json!([{"name": "http", "port": 8080}]),
            ready(&[("10.244.0.9", None)]),
        ));
        v
    }

    fn resolve_str(v: &ClusterView, q: &str) -> Resolved {
        let labels = relative_labels(&Name::from_ascii(q).unwrap(), &v.zone).unwrap();
        resolve(v, &classify(&labels))
    }

    fn addr(ip: &str, host: Option<&str>, port: Option<u16>) -> Target {
        Target::Addr {
            ip: ip.parse().unwrap(),
            host: host.map(Into::into),
            port,
        }
    }

    #[test]
    fn resolves_names() {
        let v = view();
        let t = |x: Vec<Target>| Resolved::Targets(x);
        let cases = [
            (
                "web.default.svc.cluster.local.",
                t(vec![addr("10.96.0.20", None, Some(80))]),
            ),
            (
                "_http._tcp.web.default.svc.cluster.local.",
                t(vec![addr("10.96.0.20", None, Some(80))]),
            ),
            (
                "_http._udp.web.default.svc.cluster.local.",
                Resolved::NxDomain,
            ),
            ("_tcp.web.default.svc.cluster.local.", t(vec![])),
            ("_udp.web.default.svc.cluster.local.", Resolved::NxDomain),
            // Endpoint names work for ClusterIP services too (dashed IP).
            (
                "10-244-0-9.web.default.svc.cluster.local.",
                t(vec![addr("10.244.0.9", Some("10-244-0-9"), Some(8080))]),
            ),
            (
                "db.default.svc.cluster.local.",
                t(vec![addr("10.244.0.5", Some("db-0"), Some(5432))]),
            ),
            (
                "db-0.db.default.svc.cluster.local.",
                t(vec![addr("10.244.0.5", Some("db-0"), Some(5432))]),
            ),
            (
                "10-244-0-6.db.default.svc.cluster.local.",
                Resolved::NxDomain,
            ),
            ("missing.default.svc.cluster.local.", Resolved::NxDomain),
            ("default.svc.cluster.local.", t(vec![])),
            ("nope.svc.cluster.local.", Resolved::NxDomain),
            (
                "1-2-3-4.any.pod.cluster.local.",
                t(vec![addr("1.2.3.4", None, None)]),
            ),
            ("x.any.pod.cluster.local.", Resolved::NxDomain),
        ];
        for (q, want) in cases {
            assert_eq!(resolve_str(&v, q), want, "{q}");
        }
    }

    #[test]
    fn publish_not_ready_includes_unready() {
        let mut v = view();
        v.upsert_service(&service(
            "default",
            "db",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
        ));
        let Resolved::Targets(t) = resolve_str(&v, "db.default.svc.cluster.local.") else {
            panic!("expected targets");
        };
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn headless_without_ready_endpoints_is_nxdomain() {
        let mut v = view();
        v.remove_slice("default", "db-1");
        assert_eq!(
            resolve_str(&v, "db.default.svc.cluster.local."),
            Resolved::NxDomain
        );
    }
}
