//! An Ingress backend resolved against Services and EndpointSlices: the Service port by
//! number or name, then the ready endpoints of the slices' port of that name.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressBackend;

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where a route sends requests, or why it cannot.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port` (or `namespace/Kind/name` of a resource backend), for logs,
    /// metrics and the table's text form.
    pub name: Arc<str>,
    pub state: BackendState,
    next: AtomicUsize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendState {
    /// Ready endpoints, in a stable order.
    Ready(Vec<SocketAddr>),
    /// Known but unserviceable: the answer is 503 with this reason.
    Unavailable(&'static str),
}

impl Backend {
    fn new(name: String, state: BackendState) -> Backend {
        Backend {
            name: name.into(),
            state,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints to try, starting with the next in round-robin order.
    pub fn endpoints(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let all: &[SocketAddr] = match &self.state {
            BackendState::Ready(all) => all,
            BackendState::Unavailable(_) => &[],
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed) % all.len().max(1);
        all[start..].iter().chain(&all[..start]).copied()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            BackendState::Ready(eps) => {
                let eps: Vec<String> = eps.iter().map(SocketAddr::to_string).collect();
                write!(f, "{} [{}]", self.name, eps.join(" "))
            }
            BackendState::Unavailable(why) => write!(f, "{} (503: {why})", self.name),
        }
    }
}

/// The Services and slices a backend is looked up in.
pub struct Catalog<'a> {
    pub services: &'a [&'a Service],
    pub slices: &'a [&'a EndpointSlice],
}

impl Catalog<'_> {
    /// Resolves `backend` of an Ingress in `namespace`.
    pub fn resolve(&self, namespace: &str, backend: &IngressBackend) -> Backend {
        if let Some(r) = &backend.resource {
            let name = format!("{namespace}/{}/{}", r.kind, r.name);
            return Backend::new(
                name,
                BackendState::Unavailable("resource backends are not supported"),
            );
        }
        let Some(svc) = &backend.service else {
            return Backend::new(
                format!("{namespace}/<none>"),
                BackendState::Unavailable("no backend"),
            );
        };
        let port = svc.port.as_ref();
        let (number, port_name) = (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
        );
        let shown = match (number, port_name) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "<none>".into(),
        };
        let name = format!("{namespace}/{}:{shown}", svc.name);
        let found = self.services.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(svc.name.as_str())
        });
        let Some(found) = found else {
            return Backend::new(name, BackendState::Unavailable("service not found"));
        };
        let ports = found
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        let svc_port = ports.iter().find(|p| match (number, port_name) {
            (Some(n), _) => p.port == n,
            (None, Some(n)) => p.name.as_deref() == Some(n),
            (None, None) => false,
        });
        let Some(svc_port) = svc_port else {
            return Backend::new(name, BackendState::Unavailable("service port not found"));
        };
        let eps = self.ready_endpoints(namespace, &svc.name, svc_port.name.as_deref());
        if eps.is_empty() {
            return Backend::new(name, BackendState::Unavailable("no ready endpoints"));
        }
        Backend::new(name, BackendState::Ready(eps))
    }

    fn ready_endpoints(&self, ns: &str, service: &str, port_name: Option<&str>) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let of_service = self.slices.iter().filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|n| n == service)
        });
        for slice in of_service {
            let port =
                slice.ports.as_deref().unwrap_or_default().iter().find(|p| {
                    p.name.as_deref().unwrap_or_default() == port_name.unwrap_or_default()
                });
            let Some(port) = port.and_then(|p| p.port) else {
                continue;
            };
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for addr in &ep.addresses {
                    if let (Ok(ip), Ok(port)) = (addr.parse::<IpAddr>(), u16::try_from(port)) {
                        out.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
