//! kinet's ingress controller, an add-on like cluster DNS: an ordinary API client that
//! watches Ingress, IngressClass, Service, EndpointSlice and Secret objects, compiles the
//! Ingresses of its class into a [`RouteTable`] (a pure function of those objects), and
//! proxies HTTP and HTTPS to the ready endpoints the table names.

pub mod accesslog;
pub mod backends;
pub mod certs;
pub mod class;
pub mod drain;
pub mod headers;
pub mod metrics;
pub mod paths;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod status;
pub mod upstream;
pub mod watch;

pub use routes::{Objects, Route, RouteTable, Verdict};

/// The controller name of kinet's IngressClass.
pub const CONTROLLER: &str = "kinet.dev/ingress";

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

pub use proxy::Limits;

/// How the controller is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// `/metrics` and `/healthz`.
    pub metrics: SocketAddr,
    /// The IngressClass controller name it serves.
    pub controller: String,
    /// The LoadBalancer Service whose address goes into the Ingresses' status.
    pub publish_service: Option<(String, String)>,
    pub limits: Limits,
    /// The shutdown on SIGTERM.
    pub drain: drain::Timing,
}

/// Binds the listeners, then serves and follows the API until SIGTERM or Ctrl-C, then drains.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))
    };
    let (http, https, metrics) = (
        bind(config.http).await?,
        bind(config.https).await?,
        bind(config.metrics).await?,
    );
    let proxy = Arc::new(proxy::Proxy::new(config.limits));
    let certs = Arc::new(certs::CertStore::new(certs::fallback()?));
    let synced = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(drain::Drain::default());
    let tls = Arc::new(server::tls_config(certs.clone()));
    let tasks = [
        tokio::spawn(server::serve_http(http, proxy.clone(), drain.clone())),
        tokio::spawn(server::serve_https(
            https,
            proxy.clone(),
            tls,
            drain.clone(),
        )),
        tokio::spawn(server::serve_metrics(
            metrics,
            proxy.clone(),
            synced.clone(),
            drain.clone(),
        )),
        tokio::spawn(
            watch::Controller {
                client,
                controller: config.controller,
                publish_service: config.publish_service,
                proxy,
                certs,
                synced,
            }
            .run(),
        ),
    ];
    tracing::info!(http = %config.http, https = %config.https, metrics = %config.metrics, "ingress serving");
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(delay = ?config.drain.delay, "ingress: shutting down; readiness fails");
    if !drain.drain(config.drain).await {
        tracing::warn!(grace = ?config.drain.grace, "ingress: requests still in flight after the grace period");
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}
