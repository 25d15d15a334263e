//! The pod's HTTP side: `/metrics` for Prometheus, `/health` for liveness and `/ready` for
//! readiness, each with its named checks ([`crate::health`]) and a path per check.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct Probes {
    pub metrics: Arc<Metrics>,
    pub checks: kinet_health::Checks,
}

/// Accept connections forever; each is served on its own task.
pub(crate) async fn serve(listener: TcpListener, probes: Probes) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let probes = probes.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let probes = probes.clone();
                async move { Ok::<_, Infallible>(route(&probes, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

async fn route(probes: &Probes, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = text(StatusCode::OK, probes.metrics.render());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        path => {
            let report = match kinet_health::split_path(path, &["health", "ready"]) {
                Some((endpoint, check)) => {
                    let query = kinet_health::Query::parse(req.uri().query());
                    probes.checks.report(endpoint, check, &query).await
                }
                None => None,
            };
            match report {
                Some(r) => text(
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    r.body,
                ),
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}
