//! The streaming pod subresources (log, exec, attach, portforward) go to the node agent of the
//! pod's node, as kube-apiserver sends them to the kubelet: over TLS with the kubelet client
//! certificate, to the node's address and `daemonEndpoints.kubeletEndpoint.Port`. Logs are
//! streamed through; upgrades are relayed as raw bytes once both sides switched protocols
//! (kube-apiserver's UpgradeAwareHandler).
//!
//! The pure parts (which container, which address, which kubelet path) come first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use kinet_types::ApiError;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::http::Reply;

/// The certificate the API server presents to node agents (CN
/// `kube-apiserver-kubelet-client`, signed by the cluster CA).
#[derive(Clone)]
pub struct KubeletClient {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

/// How long connecting to an agent may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an agent's error body relayed.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The container a log, exec or attach request means, as kube-apiserver validates it.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            let known = ["initContainers", "containers", "ephemeralContainers"]
                .iter()
                .any(|f| names(f).iter().any(|n| n == c));
            if known {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => {
                let all: Vec<String> = ["initContainers", "containers", "ephemeralContainers"]
                    .iter()
                    .flat_map(|f| names(f))
                    .collect();
                Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )))
            }
        },
    }
}

/// The agent's address and port from a Node: InternalIP, then ExternalIP, then Hostname
/// (kinet's node names do not resolve, so addresses come first), and the kubelet endpoint
/// port (10250 when unset).
pub fn node_endpoint(node: &Value) -> Result<(String, u16), ApiError> {
    let addresses = node["status"]["addresses"].as_array();
    let find = |kind: &str| {
        addresses
            .into_iter()
            .flatten()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    };
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|k| find(k))
        .ok_or_else(|| {
            let known: Vec<String> = addresses
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{{{} {}}}",
                        a["type"].as_str().unwrap_or(""),
                        a["address"].as_str().unwrap_or("")
                    )
                })
                .collect();
            ApiError::internal(format!(
                "no preferred addresses found; known addresses: [{}]",
                known.join(" ")
            ))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(kinet_node_api::DEFAULT_PORT);
    Ok((host.to_string(), port))
}

/// The kubelet path and query for a subresource: the container moves into the path, the rest
/// of the query is passed on.
pub fn kubelet_path(
    sub: &str,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    query: Option<&str>,
) -> String {
    let base = match (sub, container) {
        ("log", Some(c)) => format!("/containerLogs/{namespace}/{pod}/{c}"),
        ("exec", Some(c)) => format!("/exec/{namespace}/{pod}/{c}"),
        ("attach", Some(c)) => format!("/attach/{namespace}/{pod}/{c}"),
        _ => format!("/portForward/{namespace}/{pod}"),
    };
    let rest: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .filter(|(k, _)| k != "container"),
        )
        .finish();
    if rest.is_empty() {
        base
    } else {
        format!("{base}?{rest}")
    }
}

/// Headers an upgrade needs upstream: the protocol negotiation, nothing of the client's
/// credentials.
const UPGRADE_HEADERS: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// One request to an agent.
pub struct Forward<'a> {
    pub tls: Arc<rustls::ClientConfig>,
    pub host: &'a str,
    pub port: u16,
    pub method: Method,
    pub path: String,
    pub headers: &'a HeaderMap,
}

impl Forward<'_> {
    /// Streams a log: the agent's body on success, its error as a Status otherwise.
    pub async fn log(self) -> Result<Reply, ApiError> {
        let url = format!("https://{}:{}{}", self.host, self.port, self.path);
        let mut sender = self
            .dial(false)
            .await
            .map_err(|e| unknown(format!("Get {url:?}: {e}")))?;
        let req = self.request(false)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unknown(format!("Get {url:?}: {e}")))?;
        if !resp.status().is_success() {
            return Err(agent_error(resp).await);
        }
        let (tx, rx) = mpsc::channel(8);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return };
                if let Ok(data) = frame.into_data() {
                    if tx.send(data).await.is_err() {
                        return;
                    }
                }
            }
        });
        let mut reply = Response::new(kinet_node_api::ChannelBody(rx).boxed());
        reply
            .headers_mut()
            .insert(header::CONTENT_TYPE, "text/plain".parse().expect("valid"));
        Ok(reply)
    }

    /// Sends the upgrade request on; on 101 relays the agent's answer and then splices the two
    /// connections, otherwise relays the agent's refusal as it is.
    pub async fn upgrade(self, downstream: Option<OnUpgrade>) -> Result<Reply, ApiError> {
        let asks_upgrade = self
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        let downstream = downstream
            .filter(|_| asks_upgrade)
            .ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
        let mut sender = self
            .dial(true)
            .await
            .map_err(|e| unknown(format!("error dialing backend: {e}")))?;
        let req = self.request(true)?;
        let mut resp = sender
            .send_request(req)
            .await
            .map_err(|e| unknown(format!("error dialing backend: {e}")))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let mut reply = Response::new(crate::http::full(body));
            *reply.status_mut() = status;
            if let Some(ct) = headers.get(header::CONTENT_TYPE) {
                reply.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            return Ok(reply);
        }
        let mut reply = Response::new(crate::http::full(Bytes::new()));
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *reply.headers_mut() = resp.headers().clone();
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (up, down) = match tokio::join!(upstream, downstream) {
                (Ok(up), Ok(down)) => (up, down),
                (up, down) => {
                    return tracing::debug!(
                        upstream = up.is_ok(),
                        downstream = down.is_ok(),
                        "upgrade did not complete"
                    )
                }
            };
            let (mut up, mut down) = (TokioIo::new(up), TokioIo::new(down));
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "upgraded stream ended");
            }
        });
        Ok(reply)
    }

    async fn dial(
        &self,
        upgrades: bool,
    ) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: connect: {}", go_errno(&e)))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(self.host.to_string())
            .map_err(|e| format!("{addr}: {e}"))?;
        let tls = tokio::time::timeout(
            DIAL_TIMEOUT,
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("{addr}: TLS handshake timeout"))?
        .map_err(|e| format!("{addr}: TLS handshake: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tokio::spawn(async move {
            let done = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "node agent connection ended");
            }
        });
        Ok(sender)
    }

    fn request(&self, upgrade: bool) -> Result<Request<Empty<Bytes>>, ApiError> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header(header::HOST, format!("{}:{}", self.host, self.port));
        if upgrade {
            for name in UPGRADE_HEADERS {
                for value in self.headers.get_all(name) {
                    req = req.header(name, value);
                }
            }
        }
        if let Some(agent) = self.headers.get(header::USER_AGENT) {
            req = req.header(header::USER_AGENT, agent);
        }
        req.body(Empty::new())
            .map_err(|e| ApiError::internal(format!("building the node request: {e}")))
    }
}

/// How Go words the usual connect errors (kubectl users know these), else the OS's text.
fn go_errno(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        HostUnreachable => "no route to host".into(),
        NetworkUnreachable => "network is unreachable".into(),
        TimedOut => "connection timed out".into(),
        _ => e.to_string(),
    }
}

/// A 500 with no reason, as kube-apiserver reports errors that are not API errors.
fn unknown(message: String) -> ApiError {
    ApiError::new(500, "", message)
}

/// The agent's plain-text error as a Status, as kube-apiserver's response checker maps it.
async fn agent_error(resp: Response<hyper::body::Incoming>) -> ApiError {
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim_end().to_string();
    match status {
        400 => ApiError::bad_request(text),
        404 => ApiError::new(404, "NotFound", text),
        500 => ApiError::internal(text),
        other => ApiError::new(other, "", text),
    }
}

#[cfg(test)]
mod tests;
