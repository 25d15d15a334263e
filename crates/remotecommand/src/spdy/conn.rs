//! A server-side SPDY/3.1 connection: the peer (kubectl) opens every stream; this side replies
//! to each SYN_STREAM at once (spdystream clients wait for the reply), echoes pings, and hands
//! each stream out as a duplex pipe. Writes from every stream go through one writer task,
//! which owns the header compressor so blocks are compressed in send order.
//!
//! Flow control: spdystream (kubectl's SPDY library) neither sends nor honours WINDOW_UPDATE,
//! so neither does this side; data from the peer is queued per stream, never stalling the reader.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{self, Frame, FLAG_FIN};
use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};
use super::SpdyError;
use crate::pipe;

/// A stream the peer opened.
pub(crate) struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// Read: the peer's data (EOF at its FIN or a reset). Write: DATA frames; shut down for FIN.
    pub io: DuplexStream,
    /// Resolves once everything written to `io` is queued for sending (after FIN or a reset).
    pub flushed: oneshot::Receiver<()>,
}

enum Out {
    Frame(Frame),
    /// Send GOAWAY and close the write side.
    GoAway,
}

struct Entry {
    /// The peer's data; `None` after its FIN.
    inbound: Option<mpsc::UnboundedSender<Bytes>>,
    /// Dropping this stops the stream's tasks (a reset).
    _stop: oneshot::Sender<()>,
    /// This side has sent FIN.
    local_done: bool,
}

type Streams = Arc<Mutex<HashMap<u32, Entry>>>;

pub(crate) struct Connection {
    incoming: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<Result<(), SpdyError>>,
}

impl Connection {
    pub fn start<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out, out_rx) = mpsc::channel(256);
        let (new_tx, incoming) = mpsc::channel(16);
        let writer = tokio::spawn(write_loop(wr, out_rx));
        let reader = tokio::spawn(read_loop(rd, out.clone(), new_tx));
        Connection {
            incoming,
            out,
            reader,
            writer,
        }
    }

    /// The next stream the peer opens; `None` once the connection has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Refuses a stream (RST_STREAM), e.g. one of an unexpected type.
    pub async fn reset(&self, id: u32, status: u32) {
        let _ = self
            .out
            .send(Out::Frame(Frame::RstStream {
                stream_id: id,
                status,
            }))
            .await;
    }

    /// Sends GOAWAY after everything already queued, closes the write side, and stops reading.
    pub async fn shutdown(mut self) -> Result<(), SpdyError> {
        let _ = self.out.send(Out::GoAway).await;
        let result = match (&mut self.writer).await {
            Ok(r) => r,
            Err(_) => Err(SpdyError::Protocol("writer task failed")),
        };
        self.reader.abort();
        result
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn write_loop<W: AsyncWrite>(
    mut wr: tokio::io::WriteHalf<W>,
    mut rx: mpsc::Receiver<Out>,
) -> Result<(), SpdyError> {
    let mut z = HeaderCompressor::new()?;
    let mut last_seen = 0;
    while let Some(out) = rx.recv().await {
        let f = match out {
            Out::Frame(f) => f,
            Out::GoAway => break,
        };
        if let Frame::SynReply { stream_id, .. } = f {
            last_seen = stream_id;
        }
        wr.write_all(&frame::encode(&f, &mut z)?).await?;
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    let goaway = Frame::GoAway {
        last_good_stream_id: last_seen,
        status: 0,
    };
    wr.write_all(&frame::encode(&goaway, &mut z)?).await?;
    wr.flush().await?;
    wr.shutdown().await?;
    Ok(())
}

async fn read_loop<R: AsyncRead>(
    rd: tokio::io::ReadHalf<R>,
    out: mpsc::Sender<Out>,
    new_streams: mpsc::Sender<Stream>,
) {
    let streams = ClearOnDrop(Arc::default());
    if let Err(e) = read_frames(rd, &out, &new_streams, &streams.0).await {
        tracing::debug!(error = %e, "spdy connection ended");
    }
}

/// Every stream sees EOF and its writes fail once the reader ends, even when it is aborted.
/// (Stream pumps hold the map, so without this their stop signals would never fire.)
struct ClearOnDrop(Streams);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        lock(&self.0).clear();
    }
}

async fn read_frames<R: AsyncRead>(
    mut rd: tokio::io::ReadHalf<R>,
    out: &mpsc::Sender<Out>,
    new_streams: &mpsc::Sender<Stream>,
    streams: &Streams,
) -> Result<(), SpdyError> {
    let mut z = HeaderDecompressor::new();
    while let Some((head, body)) = frame::read_raw(&mut rd).await? {
        let Some(f) = frame::decode(head, &body, &mut z)? else {
            continue;
        };
        match f {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                let stream = open(stream_id, flags, headers, out, streams);
                // The reply is queued before any data the stream's pump can send.
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: vec![],
                };
                if out.send(Out::Frame(reply)).await.is_err() {
                    return Ok(());
                }
                if new_streams.send(stream).await.is_err() {
                    // Nobody accepts streams any more: refuse it.
                    lock(streams).remove(&stream_id);
                    let _ = out
                        .send(Out::Frame(Frame::RstStream {
                            stream_id,
                            status: frame::RST_REFUSED_STREAM,
                        }))
                        .await;
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let mut map = lock(streams);
                if let Some(entry) = map.get_mut(&stream_id) {
                    if let Some(tx) = &entry.inbound {
                        if !data.is_empty() {
                            let _ = tx.send(Bytes::from(data));
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        entry.inbound = None;
                        if entry.local_done {
                            map.remove(&stream_id);
                        }
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                lock(streams).remove(&stream_id);
            }
            Frame::Ping { id } => {
                // Odd ids are the client's; echo them. Even ones would answer our own pings.
                if id % 2 == 1 && out.send(Out::Frame(Frame::Ping { id })).await.is_err() {
                    return Ok(());
                }
            }
            Frame::GoAway { .. } => {
                tracing::debug!("peer sent GOAWAY");
            }
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. } => {}
        }
    }
    Ok(())
}

fn lock(streams: &Streams) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
    streams.lock().unwrap_or_else(|p| p.into_inner())
}

fn open(
    stream_id: u32,
    flags: u8,
    headers: Headers,
    out: &mpsc::Sender<Out>,
    streams: &Streams,
) -> Stream {
    let (stop_tx, stop) = oneshot::channel();
    let out = out.clone();
    let map = streams.clone();
    let send = move |chunk: Option<Bytes>| {
        let out = out.clone();
        let map = map.clone();
        async move {
            let (flags, data) = match chunk {
                Some(b) => (0, b.to_vec()),
                None => (FLAG_FIN, Vec::new()),
            };
            let fin = flags & FLAG_FIN != 0;
            let data = Frame::Data {
                stream_id,
                flags,
                data,
            };
            let sent = out.send(Out::Frame(data)).await.is_ok();
            if fin {
                let mut map = lock(&map);
                if let Some(entry) = map.get_mut(&stream_id) {
                    entry.local_done = true;
                    if entry.inbound.is_none() {
                        map.remove(&stream_id);
                    }
                }
            }
            sent
        }
    };
    let (io, plumbing) = pipe::stream(send, stop);
    let inbound = (flags & FLAG_FIN == 0).then_some(plumbing.inbound);
    lock(streams).insert(
        stream_id,
        Entry {
            inbound,
            _stop: stop_tx,
            local_done: false,
        },
    );
    Stream {
        id: stream_id,
        headers,
        io,
        flushed: plumbing.flushed,
    }
}

impl From<io::Error> for SpdyError {
    fn from(e: io::Error) -> Self {
        SpdyError::Io(e)
    }
}
