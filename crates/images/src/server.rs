//! The sockets and the HTTP/1 serving loop the built-in images share.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Where a built-in image listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// As the image does: every address (`[::]`, or `0.0.0.0` without IPv6) and the image's
    /// ports.
    Image,
    /// Tests: this address with OS-assigned ports.
    At(IpAddr),
}

/// A request with its body read (the images only take small ones).
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: SocketAddr,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn target(&self) -> String {
        self.uri
            .path_and_query()
            .map_or_else(|| self.uri.path().to_string(), |pq| pq.as_str().to_string())
    }

    pub fn version_text(&self) -> &'static str {
        match self.version {
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        }
    }
}

pub(crate) type Resp = Response<Full<Bytes>>;
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Req) -> BoxFuture<Resp> + Send + Sync>;

/// The address a socket of `bind` uses for `port`, wildcard first.
fn candidates(bind: Bind, port: u16) -> Vec<SocketAddr> {
    match bind {
        Bind::At(ip) => vec![SocketAddr::new(ip, 0)],
        // `[::]` is dual-stack on Linux; a pod without IPv6 only has 0.0.0.0.
        Bind::Image => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ],
    }
}

pub(crate) async fn listen_tcp(bind: Bind, port: u16) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in candidates(bind, port) {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address to bind")))
}

/// A UDP socket; `ip` narrows the image's wildcard (agnhost's `--udp-listen-addresses`).
pub(crate) async fn listen_udp(bind: Bind, ip: Option<IpAddr>, port: u16) -> io::Result<UdpSocket> {
    let addrs = match (bind, ip) {
        (Bind::Image, Some(ip)) => vec![SocketAddr::new(ip, port)],
        _ => candidates(bind, port),
    };
    let mut last = None;
    for addr in addrs {
        match UdpSocket::bind(addr).await {
            Ok(socket) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address to bind")))
}

/// IPv4 clients of a dual-stack socket appear as `::ffff:a.b.c.d`; show them as Go and
/// nginx do, as plain IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Serves HTTP/1 on `listener` until `stop` resolves. `stop` gives `None` to drop every
/// connection at once, or `Some(timeout)` to let connections finish their requests first.
pub(crate) async fn serve_http(
    listener: TcpListener,
    handler: Handler,
    stop: impl Future<Output = Option<Duration>>,
) {
    let (drain_tx, drain_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    let drain = loop {
        tokio::select! {
            drain = &mut stop => break drain,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    connections.spawn(serve_connection(
                        stream,
                        canonical(remote),
                        handler.clone(),
                        drain_rx.clone(),
                    ));
                }
                // Out of descriptors and the like: back off rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    if let Some(timeout) = drain {
        let _ = drain_tx.send(());
        let _ = tokio::time::timeout(timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }
    // Dropping the set aborts whatever is left.
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    handler: Handler,
    mut drain: watch::Receiver<()>,
) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let req = Req {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                body,
                remote,
            };
            Ok::<_, Infallible>(handler(req).await)
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = drain.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One line to stdout, where `kubectl logs` reads it; a closed stdout is not an error.
pub(crate) fn stdout_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One line to stderr (Go's `log` writes there).
pub(crate) fn stderr_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The pod's hostname: the UTS namespace the process runs in.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim_end().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_clients_are_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.7]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.7:4000".parse().unwrap());
        let v6: SocketAddr = "[fd00::1]:4000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn bind_candidates() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(candidates(Bind::At(ip), 80), vec![SocketAddr::new(ip, 0)]);
        let image = candidates(Bind::Image, 80);
        assert_eq!(image[0].to_string(), "[::]:80");
        assert_eq!(image[1].to_string(), "0.0.0.0:80");
    }
}
