//! Compact records distilled from Services and EndpointSlices.
//!
//! Only what DNS answers need is kept, so a cluster of 10k Services stays a
//! few megabytes. Names are lowercased once here so lookups need no folding.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::compact::IpList;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label the EndpointSlice controller puts on every slice it owns.
pub(crate) use kinet_types::wellknown::SERVICE_NAME_LABEL;

/// Transport protocol of a port; Kubernetes defaults it to TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    fn parse(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP").to_ascii_uppercase().as_str() {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The `_<proto>` label without its underscore.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A (possibly unnamed) port of a Service or an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortRec {
    /// Lowercased port name; empty when unnamed. Shared through the view's
    /// interner.
    pub name: Arc<str>,
    pub proto: Proto,
    pub port: u16,
}

impl PortRec {
    /// CoreDNS semantics: an absent filter part matches anything.
    pub(crate) fn matches(&self, filter: Option<&PortFilter>) -> bool {
        match filter {
            None => true,
            Some(f) => *self.name == *f.name && self.proto.label() == f.proto,
        }
    }
}

/// `_<name>._<proto>` from an SRV-style query name, lowercased, underscores stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortFilter {
    pub name: String,
    pub proto: String,
}

/// What a Service resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SvcKind {
    /// Virtual IPs (empty while not yet allocated).
    ClusterIp(IpList),
    /// `clusterIP: None`: answers come from the endpoints.
    Headless,
    /// `type: ExternalName` with a valid DNS name target.
    External(Box<Name>),
    /// ExternalName whose target is an IP or not a name: CoreDNS answers NXDOMAIN.
    Unanswerable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceRec {
    pub kind: SvcKind,
    pub ports: Box<[PortRec]>,
    pub publish_not_ready: bool,
}

/// One endpoint of a slice: normally a single address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointRec {
    pub addrs: Box<[IpAddr]>,
    /// Lowercased `hostname` (set for StatefulSet pods with a subdomain).
    pub hostname: Option<Box<str>>,
    /// `conditions.ready`, where unset means ready (API contract).
    pub ready: bool,
}

impl EndpointRec {
    /// The label naming this endpoint under its Service: the hostname, else the
    /// address with `.`/`:` replaced by `-` (CoreDNS `endpointHostname`).
    pub(crate) fn label_for(&self, addr: &IpAddr) -> String {
        match &self.hostname {
            Some(h) => h.to_string(),
            None => dashed(addr),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SliceRec {
    /// Owning Service name (from the service-name label), lowercased.
    pub service: Arc<str>,
    pub ports: Box<[PortRec]>,
    pub endpoints: Box<[EndpointRec]>,
}

/// `10.0.0.1` -> `10-0-0-1`, `fd00::1` -> `fd00--1`.
pub(crate) fn dashed(addr: &IpAddr) -> String {
    addr.to_string().replace(['.', ':'], "-")
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

pub(crate) fn service_rec(svc: &Service) -> ServiceRec {
    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortRec {
                name: p.name.as_deref().unwrap_or("").to_ascii_lowercase().into(),
                proto: Proto::parse(p.protocol.as_deref())?,
                port: port_u16(p.port)?,
            })
        })
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        external_kind(spec.external_name.as_deref().unwrap_or(""))
    } else if spec.cluster_ip.as_deref() == Some("None") {
        SvcKind::Headless
    } else {
        // clusterIPs is authoritative when set; clusterIP is its first element.
        let raw: Vec<&str> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ => spec.cluster_ip.as_deref().into_iter().collect(),
        };
        let mut ips: Vec<IpAddr> = raw.iter().filter_map(|s| s.parse().ok()).collect();
        ips.dedup();
        SvcKind::ClusterIp(ips.into())
    };
    ServiceRec {
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    }
}

fn external_kind(target: &str) -> SvcKind {
    if target.is_empty() || target.parse::<IpAddr>().is_ok() {
        return SvcKind::Unanswerable;
    }
    match Name::from_ascii(target) {
        Ok(mut n) => {
            n.set_fqdn(true);
            SvcKind::External(Box::new(n))
        }
        Err(_) => SvcKind::Unanswerable,
    }
}

/// `None` for slices DNS ignores: FQDN address type or no owning Service.
pub(crate) fn slice_rec(slice: &EndpointSlice) -> Option<SliceRec> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return None;
    }
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortRec {
                name: p.name.as_deref().unwrap_or("").to_ascii_lowercase().into(),
                proto: Proto::parse(p.protocol.as_deref())?,
                port: port_u16(p.port?)?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let addrs: Box<[IpAddr]> = e.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            if addrs.is_empty() {
                return None;
            }
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let hostname = e
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| h.to_ascii_lowercase().into());
            Some(EndpointRec {
                addrs,
                hostname,
                ready,
            })
        })
        .collect();
    Some(SliceRec {
        service: service.to_ascii_lowercase().into(),
        ports,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{service, slice};
    use serde_json::json;

    #[test]
    fn service_kinds() {
        let cases: Vec<(serde_json::Value, SvcKind)> = vec![
            (
                json!({"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}),
                SvcKind::ClusterIp(vec!["10.96.0.1".parse().unwrap()].into()),
            ),
            (
                json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"]}),
                SvcKind::ClusterIp(
                    vec!["10.96.0.5".parse().unwrap(), "fd00::5".parse().unwrap()].into(),
                ),
            ),
            (json!({"clusterIP": "None"}), SvcKind::Headless),
            (json!({}), SvcKind::ClusterIp(Vec::new().into())),
            (
                json!({"type": "ExternalName", "externalName": "Example.COM"}),
                SvcKind::External(Box::new(Name::from_ascii("Example.COM.").unwrap())),
            ),
            (
                json!({"type": "ExternalName", "externalName": "1.2.3.4"}),
                SvcKind::Unanswerable,
            ),
            (json!({"type": "ExternalName"}), SvcKind::Unanswerable),
        ];
        for (spec, want) in cases {
            let rec = service_rec(&service("default", "s", spec.clone()));
            assert_eq!(rec.kind, want, "spec {spec}");
        }
    }

    #[test]
    fn service_ports_default_tcp_and_lowercase() {
        let rec = service_rec(&service(
            "default",
            "s",
            json!({"clusterIP": "10.0.0.1", "ports": [
                {"name": "HTTP", "port": 80},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "bad", "port": 70000}
            ]}),
        ));
        let got: Vec<(&str, Proto, u16)> = rec
            .ports
            .iter()
            .map(|p| (&*p.name, p.proto, p.port))
            .collect();
        assert_eq!(got, vec![("http", Proto::Tcp, 80), ("dns", Proto::Udp, 53)]);
    }

    #[test]
    fn slice_conversion() {
        let s = slice(
            "default",
            "web-abc",
            "web",
            "IPv4",
            json!([{"name": "http", "port": 8080}]),
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "Web-0"},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": false}},
                {"addresses": ["not-an-ip"]}
            ]),
        );
        let rec = slice_rec(&s).unwrap();
        assert_eq!(&*rec.service, "web");
        assert_eq!(rec.endpoints.len(), 2);
        assert_eq!(rec.endpoints[0].hostname.as_deref(), Some("web-0"));
        assert!(rec.endpoints[0].ready);
        assert!(!rec.endpoints[1].ready);
        assert_eq!(rec.ports[0].port, 8080);

        let fqdn = slice("default", "x", "web", "FQDN", json!([]), json!([]));
        assert!(slice_rec(&fqdn).is_none());
    }

    #[test]
    fn dashed_names() {
        for (ip, want) in [("10.0.0.1", "10-0-0-1"), ("fd00::1", "fd00--1")] {
            assert_eq!(dashed(&ip.parse().unwrap()), want);
        }
    }
}
