//! healthCheckNodePort, as kube-proxy serves it: for each `externalTrafficPolicy: Local`
//! Service with a health-check port, `GET` on `<node>:<port>` answers 200 with the count of
//! this node's ready endpoints as JSON, or 503 when there are none, so an external load
//! balancer sends traffic only to nodes that will not drop it.
//!
//! [`health_checks`] is the pure part; [`HealthServer`] owns one listener per port, opened
//! inside the node's namespace (a socket stays in the namespace it was made in).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::task::JoinHandle;

/// What one health-check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub namespace: String,
    pub name: String,
    /// Ready endpoints of the Service on this node (distinct addresses).
    pub local_endpoints: usize,
}

impl HealthCheck {
    /// (status code, body) of kube-proxy's answer.
    pub fn response(&self) -> (u16, String) {
        let body = serde_json::json!({
            "service": {"namespace": self.namespace, "name": self.name},
            "localEndpoints": self.local_endpoints,
            "serviceProxyHealthy": true,
        });
        let code = if self.local_endpoints > 0 { 200 } else { 503 };
        (code, body.to_string())
    }
}

/// Health-check port → what it reports, for every Local-policy Service that has one. Pure.
pub fn health_checks<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
) -> BTreeMap<u16, HealthCheck> {
    let mut local: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (key, ep) in crate::announce::ready_endpoints(slices) {
        if ep.node_name.as_deref() == Some(node) {
            local
                .entry(key)
                .or_default()
                .extend(ep.addresses.iter().cloned());
        }
    }
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let port = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let (Some(port), Some("Local")) = (port, spec.external_traffic_policy.as_deref()) else {
            continue;
        };
        let key = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        let count = local.get(&key).map_or(0, BTreeSet::len);
        out.insert(
            port,
            HealthCheck {
                namespace: key.0,
                name: key.1,
                local_endpoints: count,
            },
        );
    }
    out
}

type Shared = Arc<RwLock<BTreeMap<u16, HealthCheck>>>;

/// The listeners of the health-check ports, in one network namespace.
pub struct HealthServer {
    netns: PathBuf,
    state: Shared,
    listeners: BTreeMap<u16, JoinHandle<()>>,
}

impl HealthServer {
    pub fn new(netns: impl Into<PathBuf>) -> HealthServer {
        HealthServer {
            netns: netns.into(),
            state: Shared::default(),
            listeners: BTreeMap::new(),
        }
    }

    /// Serves exactly the ports of `want` with its answers. A port that cannot be bound is
    /// logged and retried on the next sync. Must run inside a tokio runtime.
    pub fn sync(&mut self, want: BTreeMap<u16, HealthCheck>) {
        let ports: BTreeSet<u16> = want.keys().copied().collect();
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = want;
        self.listeners.retain(|port, task| {
            let keep = ports.contains(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for port in ports {
            if self.listeners.contains_key(&port) {
                continue;
            }
            match bind_in(&self.netns, port) {
                Ok(listener) => {
                    let task = tokio::spawn(serve(listener, port, self.state.clone()));
                    self.listeners.insert(port, task);
                }
                Err(e) => tracing::warn!(port, error = %e, "health check port not bound"),
            }
        }
    }

    /// The ports being served.
    pub fn ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        for task in self.listeners.values() {
            task.abort();
        }
    }
}

/// A listener on `0.0.0.0:port` made by a short-lived thread inside `netns`.
fn bind_in(netns: &Path, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let std_listener = kinet_netns::run_in(netns, || {
        let l = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
        l.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(l)
    })
    .map_err(std::io::Error::other)??;
    tokio::net::TcpListener::from_std(std_listener)
}

async fn serve(listener: tokio::net::TcpListener, port: u16, state: Shared) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let check = state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&port)
                .cloned();
            let (code, body) = match check {
                Some(c) => c.response(),
                None => (404, String::new()),
            };
            let headers = format!(
                "X-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\n",
                check_weight(&body)
            );
            crate::http::answer(conn, code, "application/json", &headers, &body).await;
        });
    }
}

fn check_weight(body: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["localEndpoints"].as_u64())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::wellknown::SERVICE_NAME_LABEL;
    use serde_json::json;

    fn svc(name: &str, policy: &str, hc: Option<i32>) -> Service {
        let mut spec = json!({"type": "LoadBalancer", "clusterIP": "10.96.0.9", "externalTrafficPolicy": policy});
        if let Some(p) = hc {
            spec["healthCheckNodePort"] = json!(p);
        }
        serde_json::from_value(
            json!({"metadata": {"namespace": "default", "name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(svc: &str, eps: &[(&str, &str, bool)]) -> EndpointSlice {
        let eps: Vec<_> = eps
            .iter()
            .map(|(ip, node, ready)| json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": format!("{svc}-x"), "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4", "endpoints": eps,
        }))
        .unwrap()
    }

    #[test]
    fn counts_ready_local_endpoints_of_local_policy_services() {
        let svcs = [
            svc("web", "Local", Some(32000)),
            svc("empty", "Local", Some(32001)),
            svc("cluster", "Cluster", Some(32002)),
            svc("nohc", "Local", None),
        ];
        let slices = [slice(
            "web",
            &[
                ("10.244.0.2", "a", true),
                ("10.244.0.3", "a", false),
                ("10.244.1.2", "b", true),
            ],
        )];
        let got = health_checks(&svcs, &slices, "a");
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [32000, 32001]);
        assert_eq!(got[&32000].local_endpoints, 1);
        let (code, body) = got[&32000].response();
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({"service": {"namespace": "default", "name": "web"}, "localEndpoints": 1, "serviceProxyHealthy": true})
        );
        assert_eq!(got[&32001].response().0, 503);
        assert_eq!(
            health_checks(&svcs, &slices, "b")[&32000].local_endpoints,
            1
        );
        assert_eq!(health_checks(&svcs, &slices, "c")[&32000].response().0, 503);
    }
}
