//! The accept loop both of kinet's HTTPS servers (the API server and each node's kubelet API)
//! share: every connection gets its own task, a TLS handshake that does not finish in time is
//! dropped (a silent client must not hold a task forever), and a failed `accept` (e.g. out
//! of file descriptors) is logged and retried after a pause instead of ending the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept`, so an exhausted resource is not spun on.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown` resolves, and hands each one, once its
/// TLS handshake is done, to `serve` on a task of its own. `name` labels the log lines.
pub async fn serve<S, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
    serve: S,
) where
    S: Fn(TlsStream<TcpStream>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(server = name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let serve = serve.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve(tls, peer).await,
                Ok(Err(e)) => {
                    tracing::debug!(server = name, %peer, error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(server = name, %peer, "TLS handshake timed out"),
            }
        });
    }
}
