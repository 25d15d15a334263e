//! One task owns the write half so frames from many producers never interleave.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{encode, Opcode};

/// What producers ask the writer to send.
#[derive(Debug)]
pub(crate) enum WsOut {
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    /// A normal-closure close frame, then the write half is shut down.
    Close,
}

/// Starts the writer. It ends after `Close`, or when every sender is gone (which also closes).
pub(crate) fn spawn_writer<W>(mut io: W) -> (mpsc::Sender<WsOut>, JoinHandle<io::Result<()>>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<WsOut>(64);
    let task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match out {
                WsOut::Binary(data) => encode(true, Opcode::Binary, &data),
                WsOut::Pong(data) => encode(true, Opcode::Pong, &data),
                WsOut::Close => break,
            };
            io.write_all(&frame).await?;
            // Flush only when nothing else is queued, so bursts go out together.
            if rx.is_empty() {
                io.flush().await?;
            }
        }
        io.write_all(&encode(true, Opcode::Close, &1000u16.to_be_bytes()))
            .await?;
        io.flush().await?;
        io.shutdown().await
    });
    (tx, task)
}
