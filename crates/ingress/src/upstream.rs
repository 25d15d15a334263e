//! Connections to endpoints: HTTP/1.1 keep-alive connections kept per endpoint and reused,
//! a connect timeout, and the next endpoint tried when a connect fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body sent upstream: the client's, streamed.
pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long a connect may take before the next endpoint is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per endpoint.
const IDLE_PER_ENDPOINT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connecting to {0}: timed out")]
    ConnectTimeout(SocketAddr),
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
}

/// Idle connections by endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<UpstreamBody>>>>,
}

/// A connection checked out of the pool.
pub struct Conn {
    pub endpoint: SocketAddr,
    pub sender: SendRequest<UpstreamBody>,
}

impl Pool {
    fn take_idle(&self, endpoint: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&endpoint)?;
        while let Some(s) = list.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    /// An idle connection to `endpoint`, or a new one.
    pub async fn checkout(&self, endpoint: SocketAddr) -> Result<Conn, Error> {
        if let Some(sender) = self.take_idle(endpoint) {
            return Ok(Conn { endpoint, sender });
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
            .await
            .map_err(|_| Error::ConnectTimeout(endpoint))?
            .map_err(|e| Error::Connect(endpoint, e))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Handshake(endpoint, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended");
            }
        });
        Ok(Conn { endpoint, sender })
    }

    /// Puts `conn` back once its response has been read to the end (dropped if it closes).
    pub fn checkin(self: &Arc<Self>, mut conn: Conn) {
        let pool = self.clone();
        tokio::spawn(async move {
            if conn.sender.ready().await.is_err() {
                return;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.entry(conn.endpoint).or_default();
            if list.len() < IDLE_PER_ENDPOINT {
                list.push(conn.sender);
            }
        });
    }
}
