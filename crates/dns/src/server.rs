//! Sockets: UDP and length-prefixed TCP on one port, plus the HTTP side.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::handler::{Handler, SharedView};
use crate::health::{self, Heartbeats};
use crate::http::{self, Probes};
use crate::metrics::{Metrics, Proto};
use crate::udp;
use crate::DnsConfig;

/// An idle TCP client is closed after this (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Threads sharing the UDP socket, so in-zone answers use several cores.
const MAX_UDP_THREADS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Zone(#[from] kinet_dns_zone::ZoneError),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{what} stopped: {source}")]
    Serve {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A running server. Dropping it stops the listeners.
pub struct DnsServer {
    dns_addr: SocketAddr,
    metrics_addr: SocketAddr,
    health: Arc<health::State>,
    metrics: Arc<Metrics>,
    tasks: JoinSet<Result<(), Error>>,
    _stop_udp: StopOnDrop,
}

/// Tells the UDP threads to finish (within [`udp::STOP_POLL`]) when the server goes.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl DnsServer {
    /// Where UDP and TCP DNS are served (the bound port when `listen` had port 0).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// Where `/metrics`, `/health` and `/ready` are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the watches have synced and the server is not draining (`/ready` also checks
    /// that the zone answers).
    pub fn is_ready(&self) -> bool {
        self.health.synced.load(Ordering::Acquire) && !self.health.draining.load(Ordering::Acquire)
    }

    /// Marks the view as synced (its `informer-sync` check); [`crate::start`]'s watches set it
    /// after their first lists, callers that fill the view themselves call it.
    pub fn set_synced(&self, synced: bool) {
        self.health.synced.store(synced, Ordering::Release);
    }

    pub(crate) fn health(&self) -> Arc<health::State> {
        self.health.clone()
    }

    pub(crate) fn spawn<F>(&mut self, task: F)
    where
        F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Runs until a listener fails (they do not stop on their own).
    pub async fn wait(&mut self) -> Result<(), Error> {
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Stops the listeners; queries already being forwarded finish on their own.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }

    /// Leave gracefully: report not ready (so the Service stops sending us
    /// clients) but keep answering for `lameduck`, then stop. CoreDNS's
    /// `health { lameduck }` does the same.
    pub async fn drain(self, lameduck: Duration) {
        self.health.draining.store(true, Ordering::Release);
        tokio::time::sleep(lameduck).await;
        self.shutdown().await;
    }
}

/// Bind and serve `view`. The `informer-sync` readiness check fails until
/// [`DnsServer::set_synced`] (the watches of [`crate::start`] call it; callers without a
/// client call it themselves).
pub async fn serve(view: SharedView, config: &DnsConfig) -> Result<DnsServer, Error> {
    let (udp, tcp) = bind_dns(config.listen).await?;
    let dns_addr = udp.local_addr().map_err(|source| Error::Bind {
        what: "dns",
        addr: config.listen,
        source,
    })?;
    let metrics_listener =
        TcpListener::bind(config.metrics)
            .await
            .map_err(|source| Error::Bind {
                what: "metrics",
                addr: config.metrics,
                source,
            })?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|source| Error::Bind {
            what: "metrics",
            addr: config.metrics,
            source,
        })?;
    let metrics = Arc::new(Metrics::new());
    let handler = Arc::new(Handler::new(
        view.clone(),
        metrics.clone(),
        config.upstreams.clone(),
        config.cache_size,
    ));
    let mut tasks = JoinSet::new();
    let udp = Arc::new(udp);
    let stop = Arc::new(AtomicBool::new(false));
    // `available_parallelism` honours the CPU affinity (taskset, cpusets).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_THREADS));
    let health = Arc::new(health::State {
        synced: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        udp: Heartbeats::new(threads),
    });
    for i in 0..threads {
        let (sock, handler, stop) = (udp.clone(), handler.clone(), stop.clone());
        let rt = tokio::runtime::Handle::current();
        let state = health.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || {
                let beat = || state.udp.beat(i);
                let done = udp::serve(sock, handler, stop, rt, beat);
                state.udp.stopped(i);
                let _ = done_tx.send(done);
            })
            .map_err(|source| Error::Serve {
                what: "udp thread",
                source,
            })?;
        // The thread's end (an error, or a stop) shows in `wait` like a task's.
        tasks.spawn(async move { done_rx.await.unwrap_or(Ok(())) });
    }
    tasks.spawn(tcp_loop(tcp, handler));
    let probes = Probes {
        metrics: metrics.clone(),
        checks: health::checks(&health, &view),
    };
    tasks.spawn(async move {
        http::serve(metrics_listener, probes)
            .await
            .map_err(|source| Error::Serve {
                what: "metrics listener",
                source,
            })
    });
    Ok(DnsServer {
        dns_addr,
        metrics_addr,
        health,
        metrics,
        tasks,
        _stop_udp: StopOnDrop(stop),
    })
}

/// UDP and TCP on the same port. With port 0 the kernel picks the UDP port and
/// TCP follows it; if that TCP port is taken, try another pick.
async fn bind_dns(listen: SocketAddr) -> Result<(std::net::UdpSocket, TcpListener), Error> {
    let err = |what, source| Error::Bind {
        what,
        addr: listen,
        source,
    };
    let attempts = if listen.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = std::net::UdpSocket::bind(listen).map_err(|e| err("udp", e))?;
        // Blocking, for the UDP threads; the timeout lets them notice a stop.
        udp.set_read_timeout(Some(udp::STOP_POLL))
            .map_err(|e| err("udp", e))?;
        let bound = udp.local_addr().map_err(|e| err("udp", e))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(err(
        "tcp",
        last.unwrap_or_else(|| io::Error::other("no attempt")),
    ))
}

async fn tcp_loop(listener: TcpListener, handler: Arc<Handler>) -> Result<(), Error> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            // Out of descriptors or a client that vanished mid-handshake: keep serving.
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_conn(stream, &handler).await {
                tracing::debug!(error = %e, %peer, "tcp client ended");
            }
        });
    }
}

/// Serve length-prefixed queries on one connection in order until it closes or idles.
async fn tcp_conn(mut stream: TcpStream, handler: &Handler) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        buf.resize(usize::from(len), 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "partial query"))??;
        let Some(out) = handler.handle(&buf, Proto::Tcp).await else {
            continue;
        };
        let Ok(out_len) = u16::try_from(out.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&out_len.to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}
