//! The agent's client-side load balancer over the cluster's API servers (`kinet up
//! --api-servers`), as k3s's agent runs one (`pkg/agent/loadbalancer`): a TCP proxy on
//! 127.0.0.1 in the node's namespace that the agent's API client dials. Each connection goes to
//! the server the last one reached; when that server refuses or does not answer within
//! [`CONNECT_TIMEOUT`], the next in the list is tried, and the one that answers becomes the
//! current. TLS runs end to end between the client and the server (the servers share one
//! serving certificate), so the proxy sees only bytes. A server that dies closes its
//! connections; the client's watches then reconnect here and resume from their
//! resourceVersion on the next server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long one server gets to accept a connection before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers, in the order of their `--api-servers` index, and the current one.
#[derive(Debug)]
pub struct Servers {
    addrs: Vec<SocketAddr>,
    current: AtomicUsize,
}

impl Servers {
    pub fn new(addrs: Vec<SocketAddr>) -> Servers {
        Servers {
            addrs,
            current: AtomicUsize::new(0),
        }
    }

    /// The server the last connection reached.
    pub fn current(&self) -> SocketAddr {
        self.addrs[self.current.load(Ordering::Relaxed) % self.addrs.len()]
    }

    /// Dials the current server, then the others in turn; the first to accept becomes the
    /// current. The error is the last server's.
    pub async fn dial(&self) -> std::io::Result<TcpStream> {
        let mut last = std::io::Error::other("no API server to dial");
        for i in order(self.addrs.len(), self.current.load(Ordering::Relaxed)) {
            let addr = self.addrs[i];
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    if self.current.swap(i, Ordering::Relaxed) != i {
                        tracing::info!(server = %addr, "API server connections now go here");
                    }
                    return Ok(stream);
                }
                Ok(Err(e)) => last = e,
                Err(_) => {
                    last = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{addr} did not accept within {CONNECT_TIMEOUT:?}"),
                    )
                }
            }
            tracing::debug!(server = %addr, error = %last, "API server unreachable, trying the next");
        }
        Err(last)
    }
}

/// The indexes to try among `count` servers: `current` first, then the ones after it,
/// wrapping around.
pub fn order(count: usize, current: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (current + i) % count)
}

/// Proxies every connection `listener` accepts to a server until the task is dropped. A
/// connection no server takes is closed: the client sees the failure and retries.
pub async fn serve(listener: TcpListener, servers: Arc<Servers>) {
    loop {
        let mut client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of descriptors, say: retrying at once would spin.
                tracing::warn!(error = %e, "accepting a connection to proxy");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let servers = servers.clone();
        tokio::spawn(async move {
            match servers.dial().await {
                Ok(mut server) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
                Err(e) => tracing::warn!(error = %e, "no API server reachable"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn tries_the_current_first_then_the_rest_in_turn() {
        assert_eq!(order(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(order(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(order(1, 0).collect::<Vec<_>>(), [0]);
    }

    /// A server that answers each connection with its `name`.
    async fn named(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        (addr, task)
    }

    async fn reached(lb: SocketAddr) -> String {
        let mut s = TcpStream::connect(lb).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn connections_move_to_the_next_server_when_the_current_dies() {
        let (a, a_task) = named("a").await;
        let (b, b_task) = named("b").await;
        let servers = Arc::new(Servers::new(vec![a, b]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = listener.local_addr().unwrap();
        let proxy = tokio::spawn(serve(listener, servers.clone()));

        assert_eq!(reached(lb).await, "a");
        assert_eq!(reached(lb).await, "a", "stays on the current");
        a_task.abort();
        let _ = a_task.await;
        assert_eq!(reached(lb).await, "b");
        assert_eq!(servers.current(), b);
        assert_eq!(reached(lb).await, "b");
        // With none left, the connection is closed with nothing said.
        b_task.abort();
        let _ = b_task.await;
        assert_eq!(reached(lb).await, "");
        proxy.abort();
    }
}
