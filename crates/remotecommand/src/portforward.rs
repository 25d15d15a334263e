//! Port-forward sessions: kubectl opens an error stream and a data stream per forwarded
//! connection, paired by their `requestid` header and naming the pod port in `port`.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};

use crate::negotiate::PortForwardProtocol;
use crate::spdy::conn::{Connection, Stream};
use crate::spdy::frame::RST_REFUSED_STREAM;
use crate::spdy::headers::get;
use crate::tunnel::websocket_bytes;

/// One connection kubectl forwards to `port` in the pod.
pub struct ForwardRequest {
    pub port: u16,
    pub request_id: String,
    /// Bytes from the local client (read) and back to it (write; shut down when the pod side closes).
    pub data: DuplexStream,
    /// Write a message here if the forward fails (kubectl prints it); drop it when done.
    pub error: DuplexStream,
}

/// A port-forward connection; call [`next`](PortForwardSession::next) until it returns `None`.
pub struct PortForwardSession {
    conn: Connection,
    /// Streams waiting for their partner: request id -> (error, data).
    pending: HashMap<String, (Option<Stream>, Option<Stream>)>,
}

/// Starts the session on an upgraded connection, with the protocol from
/// [`crate::negotiate_portforward`].
pub async fn portforward_session<IO>(io: IO, protocol: PortForwardProtocol) -> PortForwardSession
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let conn = match protocol {
        PortForwardProtocol::Spdy => Connection::start(io),
        PortForwardProtocol::WebSocketTunnel => Connection::start(websocket_bytes(io)),
    };
    PortForwardSession {
        conn,
        pending: HashMap::new(),
    }
}

impl PortForwardSession {
    /// The next complete error+data pair; `None` when kubectl has gone.
    pub async fn next(&mut self) -> Option<ForwardRequest> {
        loop {
            let stream = self.conn.accept().await?;
            let kind = get(&stream.headers, "streamtype").unwrap_or("").to_string();
            let Some(request_id) = get(&stream.headers, "requestid").map(str::to_string) else {
                tracing::debug!(id = stream.id, "port-forward stream without requestid");
                self.conn.reset(stream.id, RST_REFUSED_STREAM).await;
                continue;
            };
            let entry = self.pending.entry(request_id.clone()).or_default();
            match kind.as_str() {
                "error" => entry.0 = Some(stream),
                "data" => entry.1 = Some(stream),
                other => {
                    tracing::debug!(stream_type = other, "unexpected port-forward stream");
                    self.conn.reset(stream.id, RST_REFUSED_STREAM).await;
                    continue;
                }
            }
            if entry.0.is_none() || entry.1.is_none() {
                continue;
            }
            let Some((Some(error), Some(data))) = self.pending.remove(&request_id) else {
                continue;
            };
            let port = get(&data.headers, "port").and_then(|p| p.parse::<u16>().ok());
            match port.filter(|p| *p > 0) {
                Some(port) => {
                    return Some(ForwardRequest {
                        port,
                        request_id,
                        data: data.io,
                        error: error.io,
                    })
                }
                None => {
                    let raw = get(&data.headers, "port").unwrap_or("").to_string();
                    tokio::spawn(refuse(error.io, data.io, raw));
                }
            }
        }
    }
}

async fn refuse(mut error: DuplexStream, mut data: DuplexStream, port: String) {
    let msg = format!("invalid port {port:?}: must be a number from 1 to 65535");
    let _ = error.write_all(msg.as_bytes()).await;
    let _ = error.shutdown().await;
    let _ = data.shutdown().await;
}
