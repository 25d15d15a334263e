//! Port-forward sessions: kubectl opens an error stream and a data stream per forwarded
//! connection, paired by their `requestid` header and naming the pod port in `port`.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use crate::exec::STREAM_CREATION_TIMEOUT;
use crate::negotiate::PortForwardProtocol;
use crate::spdy::conn::{Connection, Stream};
use crate::spdy::frame::{RST_CANCEL, RST_REFUSED_STREAM};
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
    /// Streams waiting for their partner: request id -> (error, data, since).
    pending: HashMap<String, Pending>,
}

#[derive(Default)]
struct Pending {
    error: Option<Stream>,
    data: Option<Stream>,
    since: Option<Instant>,
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
    /// The next complete error+data pair; `None` when kubectl has gone. A stream whose partner
    /// does not follow within [`STREAM_CREATION_TIMEOUT`] is reset.
    pub async fn next(&mut self) -> Option<ForwardRequest> {
        loop {
            let oldest = self.pending.values().filter_map(|p| p.since).min();
            let stream = match oldest {
                Some(since) => tokio::select! {
                    s = self.conn.accept() => s?,
                    _ = tokio::time::sleep_until(since + STREAM_CREATION_TIMEOUT) => {
                        self.expire().await;
                        continue;
                    }
                },
                None => self.conn.accept().await?,
            };
            if let Some(request) = self.pair(stream).await {
                return Some(request);
            }
        }
    }

    /// Files a new stream; returns the request once both of its streams are here.
    async fn pair(&mut self, stream: Stream) -> Option<ForwardRequest> {
        let kind = get(&stream.headers, "streamtype").unwrap_or("").to_string();
        let Some(request_id) = get(&stream.headers, "requestid").map(str::to_string) else {
            tracing::debug!(id = stream.id, "port-forward stream without requestid");
            self.conn.reset(stream.id, RST_REFUSED_STREAM).await;
            return None;
        };
        if kind != "error" && kind != "data" {
            tracing::debug!(stream_type = kind, "unexpected port-forward stream");
            self.conn.reset(stream.id, RST_REFUSED_STREAM).await;
            return None;
        }
        let entry = self.pending.entry(request_id.clone()).or_default();
        entry.since.get_or_insert_with(Instant::now);
        if kind == "error" {
            entry.error = Some(stream);
        } else {
            entry.data = Some(stream);
        }
        if entry.error.is_none() || entry.data.is_none() {
            return None;
        }
        let Pending {
            error: Some(error),
            data: Some(data),
            ..
        } = self.pending.remove(&request_id)?
        else {
            return None;
        };
        let raw_port = get(&data.headers, "port").unwrap_or("").to_string();
        match raw_port.parse::<u16>().ok().filter(|p| *p > 0) {
            Some(port) => Some(ForwardRequest {
                port,
                request_id,
                data: data.io,
                error: error.io,
            }),
            None => {
                tokio::spawn(refuse(error.io, data.io, raw_port));
                None
            }
        }
    }

    /// Resets the streams of requests whose partner never came.
    async fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.is_some_and(|s| now >= s + STREAM_CREATION_TIMEOUT))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            tracing::debug!(
                request_id = id,
                "timed out waiting for the other port-forward stream"
            );
            for s in [p.error, p.data].into_iter().flatten() {
                self.conn.reset(s.id, RST_CANCEL).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::frame::Frame;
    use crate::test_client::{stream_data, SpdyClient};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn pairs_streams_by_request_id_and_refuses_bad_ones() {
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut c = SpdyClient::new(client);
        let mut session = portforward_session(server, PortForwardProtocol::Spdy).await;
        // No request id: refused. A bad port: the error stream says why.
        c.open(1, &[("streamtype", "data"), ("port", "80")]).await;
        c.open(
            3,
            &[("streamtype", "error"), ("port", "x"), ("requestid", "9")],
        )
        .await;
        c.open(
            5,
            &[("streamtype", "data"), ("port", "x"), ("requestid", "9")],
        )
        .await;
        // Two forwards whose streams interleave.
        c.open(
            7,
            &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
        )
        .await;
        c.open(
            9,
            &[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "1"),
            ],
        )
        .await;
        c.open(
            11,
            &[("streamtype", "data"), ("port", "8080"), ("requestid", "1")],
        )
        .await;
        c.open(
            13,
            &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
        )
        .await;
        c.data(13, b"ping", true).await;

        let first = session.next().await.unwrap();
        assert_eq!((first.port, first.request_id.as_str()), (8080, "1"));
        let mut second = session.next().await.unwrap();
        assert_eq!((second.port, second.request_id.as_str()), (80, "0"));
        let mut got = Vec::new();
        second.data.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        second.data.write_all(b"pong").await.unwrap();
        second.data.shutdown().await.unwrap();
        drop((first, second));

        let mut frames = Vec::new();
        // The refusal runs in its own task, so its frames may come before or after.
        while !(stream_data(&frames, 3).1 && stream_data(&frames, 13).1) {
            frames.push(c.recv().await.unwrap());
        }
        assert!(frames.contains(&Frame::RstStream {
            stream_id: 1,
            status: RST_REFUSED_STREAM
        }));
        let (msg, fin) = stream_data(&frames, 3);
        assert!(fin && String::from_utf8_lossy(&msg).contains("invalid port"));
        assert_eq!(stream_data(&frames, 13), (b"pong".to_vec(), true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_partner_never_comes_is_reset() {
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut c = SpdyClient::new(client);
        let mut session = portforward_session(server, PortForwardProtocol::Spdy).await;
        c.open(
            1,
            &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
        )
        .await;
        let next = tokio::spawn(async move {
            let r = session.next().await.map(|r| r.request_id);
            (r, session)
        });
        assert!(matches!(
            c.recv().await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        assert_eq!(
            c.recv().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: RST_CANCEL
            })
        );
        // The session goes on: a later complete pair is still served.
        c.open(
            3,
            &[("streamtype", "error"), ("port", "80"), ("requestid", "1")],
        )
        .await;
        c.open(
            5,
            &[("streamtype", "data"), ("port", "80"), ("requestid", "1")],
        )
        .await;
        let (request_id, _session) = next.await.unwrap();
        assert_eq!(request_id.as_deref(), Some("1"));
    }
}
