//! One request through the proxy: resolve it in the current table, answer 404, 308 or 503
//! where the table says so, else stream it to an endpoint (the next one when a connect
//! fails) and stream the answer back; `Upgrade` requests (WebSocket) become a tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, REFERER, SERVER, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::accesslog;
use crate::backends::BackendState;
use crate::headers::{self, Arrival};
use crate::metrics::Metrics;
use crate::routes::{normalize_host, RouteTable, Verdict};
use crate::upstream::{Conn, Pool};

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Limits with ingress-nginx-like defaults, more generous on body size (its 1 MiB default
/// surprises people uploading anything).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, bytes: more gets 413.
    pub max_body: u64,
    /// How long an endpoint may take to send its response headers: then 504.
    pub response_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 100 << 20,
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// The proxy's shared state.
pub struct Proxy {
    table: RwLock<Arc<RouteTable>>,
    pub metrics: Metrics,
    log: accesslog::Log,
    pool: Arc<Pool>,
    limits: Limits,
    /// The (empty) Ingress and backend labels of requests no rule matched.
    unmatched: Arc<str>,
}

const SERVER_NAME: &str = "kinet-ingress";

fn page(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let body = format!(
        "<html>\r\n<head><title>{code} {text}</title></head>\r\n<body>\r\n<center><h1>{code} {text}</h1></center>\r\n<hr><center>{SERVER_NAME}</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// What a request became, for the log and metrics.
struct Outcome {
    ingress: Arc<str>,
    backend: Arc<str>,
    upstream: Option<SocketAddr>,
    response: Response<ProxyBody>,
}

impl Outcome {
    fn local(ingress: &Arc<str>, backend: &Arc<str>, response: Response<ProxyBody>) -> Outcome {
        Outcome {
            ingress: ingress.clone(),
            backend: backend.clone(),
            upstream: None,
            response,
        }
    }
}

impl Proxy {
    /// A proxy with no routes yet, logging to stdout.
    pub fn new(limits: Limits) -> Proxy {
        Proxy {
            table: RwLock::default(),
            metrics: Metrics::default(),
            log: accesslog::Log::stdout(),
            pool: Arc::default(),
            limits,
            unmatched: Arc::from(""),
        }
    }

    /// Serves `table` from the next request on; requests in flight keep the one they had.
    pub fn swap(&self, table: Arc<RouteTable>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    }

    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers one request, logs it and counts it.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        arrival: Arrival,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let start = Instant::now();
        let time = chrono::Utc::now();
        // Cheap clones (shared buffers): the request itself moves on to the endpoint.
        let (method, target, version) = (req.method().clone(), req.uri().clone(), req.version());
        let header = |name| req.headers().get(name).cloned();
        let (referer, user_agent) = (header(REFERER), header(USER_AGENT));
        let mut out = self.route(req, arrival).await;
        let took = start.elapsed();
        let status = out.response.status().as_u16();
        out.response
            .headers_mut()
            .entry(SERVER)
            .or_insert(HeaderValue::from_static(SERVER_NAME));
        let bytes = out
            .response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        self.metrics
            .request(&out.ingress, &out.backend, status, took);
        let logged = self.log.record(accesslog::Entry {
            client: arrival.client,
            time,
            method,
            target,
            version,
            status,
            bytes,
            referer,
            user_agent,
            took,
            backend: out.backend,
            upstream: out.upstream,
        });
        if !logged {
            self.metrics.access_log_dropped();
        }
        Ok(out.response)
    }

    async fn route(&self, req: Request<Incoming>, arrival: Arrival) -> Outcome {
        let host = match req.headers().get(HOST) {
            Some(h) => h.clone(),
            // HTTP/2 names the host in the `:authority` pseudo-header.
            None => req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or(HeaderValue::from_static("")),
        };
        let host_name = host.to_str().unwrap_or_default();
        let table = self.table();
        let route = match table.resolve(host_name, req.uri().path()) {
            Verdict::NotFound => {
                return Outcome::local(
                    &self.unmatched,
                    &self.unmatched,
                    page(StatusCode::NOT_FOUND, "Not Found"),
                );
            }
            Verdict::Route(r) => r.clone(),
        };
        let (ingress, backend) = (&route.ingress, &route.backend.name);
        if route.redirect_https && !arrival.https {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = format!("https://{}{target}", normalize_host(host_name));
            let mut resp = page(StatusCode::PERMANENT_REDIRECT, "Permanent Redirect");
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(LOCATION, v);
            }
            return Outcome::local(ingress, backend, resp);
        }
        if let BackendState::Unavailable(why) = &route.backend.state {
            tracing::debug!(%backend, why, "no endpoint to serve the request");
            return Outcome::local(
                ingress,
                backend,
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Temporarily Unavailable",
                ),
            );
        }
        let too_large = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > self.limits.max_body);
        if too_large {
            return Outcome::local(
                ingress,
                backend,
                page(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
            );
        }
        let Some(conn) = self.connect(&route.backend).await else {
            let resp = page(StatusCode::BAD_GATEWAY, "Bad Gateway");
            return Outcome::local(ingress, backend, resp);
        };
        let upstream = Some(conn.endpoint);
        Outcome {
            ingress: ingress.clone(),
            backend: backend.clone(),
            upstream,
            response: self.exchange(conn, req, host, arrival).await,
        }
    }

    /// A connection to the first endpoint that accepts one, in round-robin order.
    async fn connect(&self, backend: &crate::backends::Backend) -> Option<Conn> {
        for endpoint in backend.endpoints() {
            match self.pool.checkout(endpoint).await {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    self.metrics.connect_error(&backend.name);
                    tracing::warn!(backend = %backend.name, error = %e, "endpoint unreachable; trying the next");
                }
            }
        }
        None
    }

    /// Sends the request on `conn` and returns the response (or a 413/502/504 page).
    async fn exchange(
        &self,
        mut conn: Conn,
        mut req: Request<Incoming>,
        host: HeaderValue,
        arrival: Arrival,
    ) -> Response<ProxyBody> {
        let upgrade =
            headers::upgrade_protocol(req.headers()).map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        headers::forward(&mut parts.headers, host, arrival);
        parts.version = Version::HTTP_11;
        if parts.uri.authority().is_some() {
            // Absolute-form (HTTP/2 or a proxy-style request): origin-form upstream.
            let mut origin = http::uri::Parts::default();
            origin.path_and_query = parts.uri.path_and_query().cloned();
            parts.uri = http::Uri::from_parts(origin).unwrap_or_default();
        }
        let body = Limited::new(body, self.limits.max_body as usize);
        let sent = conn.sender.send_request(Request::from_parts(parts, body));
        let mut resp = match tokio::time::timeout(self.limits.response_timeout, sent).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) if body_too_large(&e) => {
                return page(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
            }
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %conn.endpoint, error = %e, "upstream request failed");
                return page(StatusCode::BAD_GATEWAY, "Bad Gateway");
            }
            Err(_) => return page(StatusCode::GATEWAY_TIMEOUT, "Gateway Time-out"),
        };
        if let Some(client) = upgrade.filter(|_| resp.status() == StatusCode::SWITCHING_PROTOCOLS) {
            let server = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client, server));
            return resp.map(|b| b.boxed());
        }
        resp.map(|b| self.pool.returning(conn, b).boxed())
    }
}

/// Whether a request failed because its body (chunked, so not refused up front) went over
/// the size limit while it streamed upstream.
fn body_too_large(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Copies bytes both ways between the upgraded client and endpoint connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, server: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(server)) = (client.await, server.await) else {
        return;
    };
    let (mut c, mut s) = (TokioIo::new(client), TokioIo::new(server));
    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}
