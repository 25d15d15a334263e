//! SPDY tunnelled over a websocket (`SPDY/3.1+portforward.k8s.io`): each binary message is a run
//! of the SPDY byte stream, in either direction, with no prefix. This turns the websocket back
//! into a byte stream.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

use crate::ws::frame::{Message, MessageReader};
use crate::ws::{spawn_writer, WsOut};

const BUFFER: usize = 256 * 1024;

/// The byte stream carried inside the websocket on `io`. Its EOF is the client's close;
/// shutting it down sends a close frame.
pub(crate) fn websocket_bytes<IO>(io: IO) -> DuplexStream
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, _writer) = spawn_writer(wr);
    let (inner, ours) = tokio::io::duplex(BUFFER);
    let (mut from_inner, mut to_inner) = tokio::io::split(ours);

    let pong = out.clone();
    tokio::spawn(async move {
        let mut reader = MessageReader::new(rd);
        while let Ok(Some(msg)) = reader.next().await {
            match msg {
                Message::Binary(data) => {
                    if to_inner.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Message::Ping(data) => {
                    let _ = pong.send(WsOut::Pong(data)).await;
                }
                Message::Close(_) => break,
                Message::Text(_) | Message::Pong(_) => {}
            }
        }
        let _ = to_inner.shutdown().await;
    });

    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_inner.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(WsOut::Binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.send(WsOut::Close).await;
    });
    inner
}
