//! Connections to endpoints: HTTP/1.1 keep-alive connections kept per endpoint and reused,
//! a connect timeout, and the next endpoint tried when a connect fails. A connection goes
//! back to the pool when its response body ends (no task per request to watch it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Limited;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body sent upstream: the client's, streamed, cut off at the size limit.
pub type UpstreamBody = Limited<Incoming>;

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
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// An idle connection to `endpoint`, or a new one.
    pub async fn checkout(&self, endpoint: SocketAddr) -> Result<Conn, Error> {
        while let Some(mut sender) = self.take_idle(endpoint) {
            // Checked in as its last response ended; it turns ready as soon as its
            // connection task has seen that end, or fails if the endpoint closed it.
            if sender.ready().await.is_ok() {
                return Ok(Conn { endpoint, sender });
            }
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

    /// Keeps `conn` for the next request (its response has been read to the end).
    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(conn.endpoint).or_default();
        if list.len() < IDLE_PER_ENDPOINT {
            list.push(conn.sender);
        }
    }

    /// `body` of a response on `conn`, which returns to the pool when the body ends; if the
    /// body is dropped before (the client left), the connection closes with it.
    pub fn returning(self: &Arc<Self>, conn: Conn, body: Incoming) -> Returning {
        let mut body = Returning {
            body,
            conn: Some((self.clone(), conn)),
        };
        body.check_end();
        body
    }
}

/// A response body that checks its connection back in at its end.
pub struct Returning {
    body: Incoming,
    conn: Option<(Arc<Pool>, Conn)>,
}

impl Returning {
    fn check_end(&mut self) {
        if self.body.is_end_stream() {
            if let Some((pool, conn)) = self.conn.take() {
                pool.checkin(conn);
            }
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => {
                if let Some((pool, conn)) = self.conn.take() {
                    pool.checkin(conn);
                }
            }
            Poll::Ready(Some(Ok(_))) => self.check_end(),
            // An error: the connection is dropped with the body.
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
