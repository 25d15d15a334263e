//! The listeners: plain HTTP, HTTPS (certificates by SNI, ALPN h2 and http/1.1) and the
//! metrics and health endpoint. Each connection is served by hyper's HTTP/1.1 + HTTP/2
//! server with upgrades; a table swap never touches a connection. On a drain the listeners
//! close and the connections finish what they have in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::certs::CertStore;
use crate::drain::Drain;
use crate::headers::Arrival;
use crate::proxy::{Proxy, ProxyBody};

/// How long a client may take to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}

async fn serve_conn<I>(io: I, proxy: Arc<Proxy>, arrival: Arrival, drain: &Drain)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A connection accepted as the shutdown began is not served.
    let Some(_open) = drain.open() else {
        return;
    };
    let service = service_fn(move |req: Request<Incoming>| proxy.clone().handle(req, arrival));
    let builder = builder();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = drain.closed() => {
            // Idle: closes now; busy: finishes its request, then closes.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %arrival.client, error = %e, "connection ended");
    }
}

/// The next connection until the drain closes the listener (`None` then).
async fn next(listener: &TcpListener, drain: &Drain) -> Option<Option<(TcpStream, SocketAddr)>> {
    tokio::select! {
        conn = accept(listener) => Some(conn),
        _ = drain.closed() => None,
    }
}

/// The next connection; on an error (out of file descriptors) a short pause, so the loop
/// does not spin.
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

fn arrival(peer: SocketAddr, local: SocketAddr, https: bool) -> Arrival {
    Arrival {
        client: peer.ip().to_canonical(),
        https,
        port: local.port(),
    }
}

/// Serves plain HTTP on `listener` until `drain` closes it.
pub async fn serve_http(listener: TcpListener, proxy: Arc<Proxy>, drain: Arc<Drain>) {
    while let Some(conn) = next(&listener, &drain).await {
        let Some((stream, peer)) = conn else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let (proxy, drain) = (proxy.clone(), drain.clone());
        tokio::spawn(async move {
            serve_conn(stream, proxy, arrival(peer, local, false), &drain).await
        });
    }
}

/// The TLS configuration: certificates from `certs`, h2 preferred.
pub fn tls_config(certs: Arc<CertStore>) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_no_client_auth()
    .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Serves HTTPS on `listener` until `drain` closes it.
pub async fn serve_https(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    tls: Arc<rustls::ServerConfig>,
    drain: Arc<Drain>,
) {
    let acceptor = TlsAcceptor::from(tls);
    while let Some(conn) = next(&listener, &drain).await {
        let Some((stream, peer)) = conn else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let (acceptor, proxy, drain) = (acceptor.clone(), proxy.clone(), drain.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_conn(tls, proxy, arrival(peer, local, true), &drain).await,
                Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
            }
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r
}

/// `/metrics`, and `/healthz` (200 once every watch has listed, so the pod turns Ready
/// only when it routes what the API holds; 503 again once draining).
pub async fn serve_metrics(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    synced: Arc<AtomicBool>,
    drain: Arc<Drain>,
) {
    loop {
        let Some((stream, _)) = accept(&listener).await else {
            continue;
        };
        let (proxy, synced, drain) = (proxy.clone(), synced.clone(), drain.clone());
        let service = service_fn(move |req: Request<Incoming>| {
            let resp = match req.uri().path() {
                "/metrics" => text(StatusCode::OK, proxy.metrics.render()),
                "/healthz" if drain.draining() => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
                }
                "/healthz" if synced.load(Ordering::Acquire) => text(StatusCode::OK, "ok".into()),
                "/healthz" => text(StatusCode::SERVICE_UNAVAILABLE, "watches not synced".into()),
                _ => text(StatusCode::NOT_FOUND, "not found".into()),
            };
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _ = builder()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
