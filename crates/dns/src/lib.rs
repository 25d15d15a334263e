//! The cluster DNS server: answers `cluster.local` from API watches through
//! [`kinet_dns_zone`], forwards other names to upstreams (or refuses them when
//! none are configured), and exposes Prometheus metrics and probes.
//!
//! [`serve`] is the socket side over a shared [`ClusterView`]; [`start`] adds
//! the watches that keep that view current; [`run`] is `start` until failure.

mod answers;
mod cache;
mod forward;
mod handler;
mod health;
mod http;
mod metrics;
mod server;
mod udp;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kinet_types::wellknown::DNS_METRICS_PORT;
use tokio::signal::unix::{signal, SignalKind};

pub use handler::SharedView;
pub use kinet_dns_zone::ClusterView;
pub use metrics::{Metrics, Proto};
pub use server::{serve, DnsServer, Error};

/// Forward-cache size when none is given (entries, not bytes).
pub const DEFAULT_CACHE_SIZE: usize = 10_000;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub zone: String,
    /// UDP and TCP DNS address; port 0 picks a free port (see [`DnsServer::dns_addr`]).
    pub listen: SocketAddr,
    /// HTTP address for `/metrics`, `/health` and `/ready`.
    pub metrics: SocketAddr,
    /// Resolvers for names outside the zone; empty means REFUSED, so nothing
    /// leaves the machine.
    pub upstreams: Vec<SocketAddr>,
    /// Forward-cache capacity in responses; 0 disables the cache.
    pub cache_size: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            zone: "cluster.local".into(),
            listen: (Ipv4Addr::UNSPECIFIED, 53).into(),
            metrics: (Ipv4Addr::UNSPECIFIED, DNS_METRICS_PORT).into(),
            upstreams: Vec::new(),
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// A fresh, empty view for `config.zone`, ready to share with [`serve`].
pub fn new_view(config: &DnsConfig) -> Result<SharedView, Error> {
    Ok(Arc::new(RwLock::new(ClusterView::new(&config.zone)?)))
}

/// Serve DNS with the view kept current by watches on Services,
/// EndpointSlices and Namespaces. Returns once the sockets are bound; `/ready`
/// turns 200 when every watch has listed once.
pub async fn start(client: kube::Client, config: &DnsConfig) -> Result<DnsServer, Error> {
    let view = new_view(config)?;
    let mut server = serve(view.clone(), config).await?;
    watch::spawn(&mut server, client, view);
    Ok(server)
}

/// How long a terminating server keeps answering while not ready.
pub const LAMEDUCK: Duration = Duration::from_secs(5);

/// [`start`], then serve until a listener fails, or until SIGTERM or Ctrl-C,
/// after which it drains for [`LAMEDUCK`].
pub async fn run(client: kube::Client, config: DnsConfig) -> anyhow::Result<()> {
    let mut server = start(client, &config).await?;
    tracing::info!(dns = %server.dns_addr(), metrics = %server.metrics_addr(), "dns serving");
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = server.wait() => r?,
        _ = term.recv() => server.drain(LAMEDUCK).await,
        _ = tokio::signal::ctrl_c() => server.drain(LAMEDUCK).await,
    }
    Ok(())
}
