//! Exec and attach sessions: the same stdin/stdout/stderr/resize/status shape over the
//! websocket channel protocols and over SPDY.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::negotiate::{Protocol, SpdyVersion};
use crate::spdy::conn::{Connection, Stream};
use crate::spdy::frame::RST_REFUSED_STREAM;
use crate::spdy::headers::get;
use crate::status::{status_json, status_text, ExitStatus};
use crate::ws::frame::{Message, MessageReader};
use crate::ws::{spawn_writer, WsOut};
use crate::{pipe, Error, Result};

/// How long the client gets to open its SPDY streams (the kubelet's default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client's answer to our websocket close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Channel numbers of the websocket protocols.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client's `[255, channel]` closes a channel (stdin at EOF).
const CLOSE: u8 = 255;

/// Which streams the client asked for (the exec/attach query's `stdin`, `stdout`, `stderr`, `tty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// Reads the options from an exec or attach query string; `true` and `1` both count.
    /// With a TTY there is no separate stderr, as the kubelet does it.
    pub fn from_query(query: &str) -> StreamOptions {
        let flag = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == name && (v == "true" || v == "1"))
        };
        let tty = flag("tty");
        StreamOptions {
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr") && !tty,
            tty,
        }
    }

    /// The `command` values of an exec query string, in order.
    pub fn command_from_query(query: &str) -> Vec<String> {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The `container` value of an exec or attach query string.
    pub fn container_from_query(query: &str) -> Option<String> {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.into_owned())
    }
}

/// A terminal size the client reported (`{"Width":..,"Height":..}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// A running exec or attach session. Take the streams you need, run the command, then
/// [`finish`](ExecSession::finish) with its status.
pub struct ExecSession {
    stdin: Option<DuplexStream>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    resizes: Option<mpsc::Receiver<TerminalSize>>,
    /// One per output stream: resolves once its data is queued for sending.
    flushed: Vec<oneshot::Receiver<()>>,
    transport: Transport,
}

enum Transport {
    WebSocket {
        out: mpsc::Sender<WsOut>,
        writer: JoinHandle<io::Result<()>>,
        reader: AbortOnDrop,
        _stops: Vec<oneshot::Sender<()>>,
    },
    Spdy {
        conn: Connection,
        error: Stream,
        version: SpdyVersion,
    },
}

impl ExecSession {
    /// What the client types (read it); EOF when the client closes stdin. Taken once.
    pub fn stdin(&mut self) -> Option<DuplexStream> {
        self.stdin.take()
    }

    /// Where the command's output goes (write to it; shut it down or drop it when done).
    pub fn stdout(&mut self) -> Option<DuplexStream> {
        self.stdout.take()
    }

    /// Like [`stdout`](Self::stdout); absent with a TTY.
    pub fn stderr(&mut self) -> Option<DuplexStream> {
        self.stderr.take()
    }

    /// Terminal size changes (TTY sessions only).
    pub fn resizes(&mut self) -> Option<mpsc::Receiver<TerminalSize>> {
        self.resizes.take()
    }

    /// Sends everything written to stdout and stderr, then the final status, and closes the
    /// connection. Output handles still held elsewhere must be dropped or shut down first.
    pub async fn finish(mut self, status: ExitStatus) -> Result<()> {
        drop(self.stdin.take());
        drop(self.stdout.take());
        drop(self.stderr.take());
        for f in self.flushed.drain(..) {
            let _ = f.await;
        }
        match self.transport {
            Transport::WebSocket {
                out,
                writer,
                mut reader,
                _stops,
            } => {
                let mut msg = vec![ERROR];
                msg.extend(status_json(&status).to_string().into_bytes());
                let _ = out.send(WsOut::Binary(msg)).await;
                let _ = out.send(WsOut::Close).await;
                drop(out);
                let written = writer.await.map_err(|e| io::Error::other(e.to_string()))?;
                // Give the client a moment to answer the close frame before the socket drops.
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader.0).await;
                written?;
                Ok(())
            }
            Transport::Spdy {
                conn,
                mut error,
                version,
            } => {
                let body = match version {
                    SpdyVersion::V4 | SpdyVersion::V5 => Some(status_json(&status).to_string()),
                    SpdyVersion::V2 | SpdyVersion::V3 => status_text(&status),
                };
                if let Some(body) = body {
                    let _ = error.io.write_all(body.as_bytes()).await;
                }
                let _ = error.io.shutdown().await;
                drop(error.io);
                let _ = error.flushed.await;
                conn.shutdown().await?;
                Ok(())
            }
        }
    }
}

/// Starts the session on an upgraded connection, with the protocol from [`crate::negotiate_exec`].
pub async fn exec_session<IO>(
    io: IO,
    protocol: Protocol,
    opts: StreamOptions,
) -> Result<ExecSession>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let opts = StreamOptions {
        stderr: opts.stderr && !opts.tty,
        ..opts
    };
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return Err(Error::NoStreams);
    }
    match protocol {
        // The versions differ only in the client's close-stdin message, which v4 never sends.
        Protocol::WebSocketV5 | Protocol::WebSocketV4 => Ok(websocket(io, opts)),
        Protocol::Spdy { version } => spdy(io, version, opts).await,
    }
}

fn websocket<IO>(io: IO, opts: StreamOptions) -> ExecSession
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, writer) = spawn_writer(wr);
    let mut stops = Vec::new();
    let mut flushed = Vec::new();
    let mut output = |channel: u8| {
        let out = out.clone();
        let (stop_tx, stop) = oneshot::channel();
        stops.push(stop_tx);
        let (user, plumbing) = pipe::stream(
            move |chunk: Option<Bytes>| {
                let out = out.clone();
                async move {
                    // kubectl v1.32 logs "Unknown stream id 255" for a server-sent close, so
                    // an output's end is not announced: the connection's close ends them all.
                    let Some(data) = chunk else { return true };
                    let msg = [&[channel][..], &data].concat();
                    out.send(WsOut::Binary(msg)).await.is_ok()
                }
            },
            stop,
        );
        flushed.push(plumbing.flushed);
        user
    };
    let stdout = opts.stdout.then(|| output(STDOUT));
    let stderr = opts.stderr.then(|| output(STDERR));
    let (stdin, stdin_tx) = if opts.stdin {
        let (user, tx) = pipe::inbound_only();
        (Some(user), Some(tx))
    } else {
        (None, None)
    };
    let (resize_tx, resizes) = if opts.tty {
        let (tx, rx) = mpsc::channel(8);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let reader = AbortOnDrop(tokio::spawn(ws_read_loop(
        rd,
        out.clone(),
        stdin_tx,
        resize_tx,
    )));
    ExecSession {
        stdin,
        stdout,
        stderr,
        resizes,
        flushed,
        transport: Transport::WebSocket {
            out,
            writer,
            reader,
            _stops: stops,
        },
    }
}

/// Stops the websocket reader when a session is dropped unfinished; its sender clone would
/// otherwise keep the writer, and so the connection, open until the client hangs up.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn ws_read_loop<R: AsyncRead>(
    rd: tokio::io::ReadHalf<R>,
    out: mpsc::Sender<WsOut>,
    mut stdin: Option<mpsc::UnboundedSender<Bytes>>,
    resize: Option<mpsc::Sender<TerminalSize>>,
) {
    let mut reader = MessageReader::new(rd);
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "exec websocket read failed");
                return;
            }
        };
        match msg {
            Message::Binary(data) => match (data.first(), data.get(1)) {
                (Some(&STDIN), _) => {
                    if let Some(tx) = &stdin {
                        let _ = tx.send(Bytes::copy_from_slice(&data[1..]));
                    }
                }
                (Some(&RESIZE), _) => {
                    if let (Some(tx), Ok(size)) = (&resize, serde_json::from_slice(&data[1..])) {
                        let _ = tx.try_send(size);
                    }
                }
                (Some(&CLOSE), Some(&STDIN)) => stdin = None,
                _ => {}
            },
            Message::Ping(data) => {
                let _ = out.send(WsOut::Pong(data)).await;
            }
            Message::Close(_) => return,
            Message::Text(_) | Message::Pong(_) => {}
        }
    }
}

async fn spdy<IO>(io: IO, version: SpdyVersion, opts: StreamOptions) -> Result<ExecSession>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Connection::start(io);
    let want_resize = opts.tty && version >= SpdyVersion::V3;
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    loop {
        let complete = error.is_some()
            && stdin.is_some() == opts.stdin
            && stdout.is_some() == opts.stdout
            && stderr.is_some() == opts.stderr
            && resize.is_some() == want_resize;
        if complete {
            break;
        }
        let stream = tokio::time::timeout_at(deadline, conn.accept())
            .await
            .map_err(|_| Error::StreamCreationTimeout)?
            .ok_or(Error::ConnectionClosed)?;
        let slot = match get(&stream.headers, "streamtype") {
            Some("error") => &mut error,
            Some("stdin") if opts.stdin => &mut stdin,
            Some("stdout") if opts.stdout => &mut stdout,
            Some("stderr") if opts.stderr => &mut stderr,
            Some("resize") if want_resize => &mut resize,
            other => {
                tracing::debug!(stream_type = ?other, "refusing unexpected exec stream");
                conn.reset(stream.id, RST_REFUSED_STREAM).await;
                continue;
            }
        };
        *slot = Some(stream);
    }
    let Some(error) = error else {
        return Err(Error::ConnectionClosed);
    };
    let mut flushed = Vec::new();
    let mut user = |s: Option<Stream>| {
        s.map(|s| {
            flushed.push(s.flushed);
            s.io
        })
    };
    let stdout = user(stdout);
    let stderr = user(stderr);
    let resizes = resize.map(|s| {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(read_resizes(s.io, tx));
        rx
    });
    Ok(ExecSession {
        stdin: stdin.map(|s| s.io),
        stdout,
        stderr,
        resizes,
        flushed,
        transport: Transport::Spdy {
            conn,
            error,
            version,
        },
    })
}

/// The SPDY resize stream carries back-to-back JSON objects.
async fn read_resizes(mut io: DuplexStream, tx: mpsc::Sender<TerminalSize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = io.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let (sizes, used, bad) = parse_sizes(&buf);
        buf.drain(..used);
        for size in sizes {
            if tx.send(size).await.is_err() {
                return;
            }
        }
        if bad {
            return;
        }
    }
}

/// Complete sizes at the front of `buf`, the bytes they used, and whether the rest is garbage.
fn parse_sizes(buf: &[u8]) -> (Vec<TerminalSize>, usize, bool) {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    let mut sizes = Vec::new();
    loop {
        match it.next() {
            Some(Ok(size)) => sizes.push(size),
            Some(Err(e)) => return (sizes, it.byte_offset(), !e.is_eof()),
            None => return (sizes, it.byte_offset(), false),
        }
    }
}

#[cfg(test)]
mod tests;
