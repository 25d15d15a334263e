//! The pod's HTTP side: `/metrics` for Prometheus, `/health` for liveness and
//! `/ready` for readiness (true once every watch has listed once).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
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
    pub ready: Arc<AtomicBool>,
}

/// Accept connections forever; each is served on its own task.
pub(crate) async fn serve(listener: TcpListener, probes: Probes) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let probes = probes.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = route(&probes, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn route(probes: &Probes, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
        "/health" => text(StatusCode::OK, "OK"),
        "/ready" if probes.ready.load(Ordering::Acquire) => text(StatusCode::OK, "OK"),
        "/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: watches not synced\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}
