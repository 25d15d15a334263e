//! Every stream a session hands out is one end of an in-memory duplex pipe. Behind the other end,
//! one task feeds what the peer sent (so a slow reader never stalls the connection's reader),
//! and one task turns what the user wrote into frames.

use std::future::Future;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

/// Bytes buffered in each direction of a stream pipe.
const PIPE_BUFFER: usize = 64 * 1024;
/// Largest chunk read from a pipe into one frame.
const CHUNK: usize = 32 * 1024;

/// The plumbing behind one user-facing stream.
pub(crate) struct Plumbing {
    /// Data from the peer; dropping it gives the user EOF.
    pub inbound: mpsc::UnboundedSender<Bytes>,
    /// Resolves when the outbound pump has queued its last frame (or was stopped).
    pub flushed: oneshot::Receiver<()>,
}

/// Makes a stream: the user's end, plus the tasks behind it. `send` gets each chunk the user
/// writes and `None` once at end of stream; it returns false to stop. `stop` resolving (or its
/// sender dropping) ends both tasks (after already-queued peer data), which makes the user's
/// writes fail; the owner drops it on a reset or when the stream is finished both ways.
pub(crate) fn stream<F, Fut>(send: F, stop: oneshot::Receiver<()>) -> (DuplexStream, Plumbing)
where
    F: FnMut(Option<Bytes>) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (user, ours) = tokio::io::duplex(PIPE_BUFFER);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let (inbound, mut from_peer) = mpsc::unbounded_channel::<Bytes>();
    let (flushed_tx, flushed) = oneshot::channel();
    let (stop_in_tx, mut stop_in) = oneshot::channel::<()>();

    // Peer -> user.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                // Queued data first, so a stop after the peer's FIN loses nothing.
                biased;
                data = from_peer.recv() => match data {
                    Some(data) => if wr.write_all(&data).await.is_err() { break },
                    None => break,
                },
                _ = &mut stop_in => break,
            }
        }
        let _ = wr.shutdown().await;
    });

    // User -> peer.
    tokio::spawn(async move {
        let mut send = send;
        let mut stop = stop;
        let mut buf = vec![0u8; CHUNK];
        let mut stopped = false;
        loop {
            tokio::select! {
                _ = &mut stop => { stopped = true; break }
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => { send(None).await; break }
                    Ok(n) => if !send(Some(Bytes::copy_from_slice(&buf[..n]))).await { break },
                },
            }
        }
        drop(flushed_tx);
        // The peer may still be sending after our FIN: keep feeding until told to stop.
        if !stopped {
            let _ = stop.await;
        }
        // Ends the feeding task too, so both halves of the pipe drop and user writes fail.
        drop(stop_in_tx);
    });
    (user, Plumbing { inbound, flushed })
}

/// The user's end of a stream the peer only writes to (websocket stdin): no outbound pump.
pub(crate) fn inbound_only() -> (DuplexStream, mpsc::UnboundedSender<Bytes>) {
    let (user, mut ours) = tokio::io::duplex(PIPE_BUFFER);
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if ours.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = ours.shutdown().await;
    });
    (user, tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn writes_become_chunks_then_end_and_peer_data_is_readable() {
        let seen = Arc::new(Mutex::new(Vec::<Option<Bytes>>::new()));
        let s = seen.clone();
        let (_stop_tx, stop) = oneshot::channel();
        let (mut user, plumbing) = stream(
            move |c| {
                s.lock().unwrap().push(c);
                async { true }
            },
            stop,
        );
        plumbing.inbound.send(Bytes::from_static(b"in")).unwrap();
        drop(plumbing.inbound);
        let mut got = Vec::new();
        user.write_all(b"out").await.unwrap();
        user.shutdown().await.unwrap();
        user.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"in");
        plumbing.flushed.await.ok();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&None));
        let bytes: Vec<u8> = seen.iter().flatten().flat_map(|b| b.to_vec()).collect();
        assert_eq!(bytes, b"out");
    }

    #[tokio::test]
    async fn stop_makes_user_writes_fail() {
        let (stop_tx, stop) = oneshot::channel();
        let (mut user, plumbing) = stream(|_| async { true }, stop);
        drop(stop_tx);
        plumbing.flushed.await.ok();
        // Both pipe halves are gone once the tasks end.
        let mut failed = false;
        for _ in 0..100 {
            if user.write_all(&[0; 1024]).await.is_err() {
                failed = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(failed);
    }
}
