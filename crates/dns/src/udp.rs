//! The UDP side: a blocking socket served by dedicated OS threads, each
//! receiving and sending in batches (`recvmmsg`/`sendmmsg`, as Knot does).
//!
//! In-zone answers need no network and finish in microseconds, so a tokio task
//! per packet only adds scheduling (and a tail when the worker is busy with the
//! watches); a thread that blocks in the kernel wakes for the packet itself.
//! Forwarded queries still go to the tokio runtime, which owns the upstream
//! sockets.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use crate::handler::{Handler, Step};
use crate::metrics::Proto;
use crate::server::Error;

/// Datagrams taken per `recvmmsg`; more only helps under a flood.
const BATCH: usize = 32;
/// Largest request we read; queries are small, EDNS allows up to 64 KiB.
const RECV_BUF: usize = 4096;
/// How often a thread blocked on an idle socket checks whether to stop.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(100);

/// Serve `sock` on this thread until `stop` is set or the socket fails, calling `beat` at
/// every turn of the loop (for the `udp` health check).
/// `sock` must be blocking with a read timeout of [`STOP_POLL`].
pub(crate) fn serve(
    sock: Arc<UdpSocket>,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
    beat: impl Fn(),
) -> Result<(), Error> {
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; RECV_BUF]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut to_send: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Acquire) {
        beat();
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(
                fd,
                &mut recv_hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(msgs) => received.extend(msgs.map(|m| (m.bytes, m.address))),
                // The read timeout: look at `stop` again.
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                // ICMP errors from earlier sends surface here on some systems; not fatal.
                Err(Errno::ECONNREFUSED) => continue,
                Err(e) => {
                    return Err(Error::Serve {
                        what: "udp listener",
                        source: io::Error::from(e),
                    })
                }
            }
        }
        // Stopped while blocked: what came in since is not answered (the
        // server is gone as far as clients can tell).
        if stop.load(Ordering::Acquire) {
            break;
        }
        to_send.clear();
        for (i, &(len, peer)) in received.iter().enumerate() {
            let Some(peer) = peer else { continue };
            let query = &bufs[i][..len.min(RECV_BUF)];
            let started = Instant::now();
            let out = &mut outs[i];
            if handler.quick(query, Proto::Udp, started, out) {
                to_send.push((i, peer));
                continue;
            }
            match handler.local(query, Proto::Udp, started) {
                Step::Done(Some(bytes)) if !bytes.is_empty() => {
                    *out = bytes;
                    to_send.push((i, peer));
                }
                Step::Done(_) => {}
                Step::Forward(req, permit) => {
                    let Some(peer) = socket_addr(&peer) else {
                        continue;
                    };
                    let (sock, handler) = (sock.clone(), handler.clone());
                    rt.spawn(async move {
                        let out = handler.forward(req, permit, Proto::Udp, started).await;
                        // A blocking socket, but a datagram send only waits for
                        // room in the send buffer: not a real stall of the runtime.
                        if !out.is_empty() {
                            if let Err(e) = sock.send_to(&out, peer) {
                                tracing::debug!(error = %e, %peer, "udp send failed");
                            }
                        }
                    });
                }
            }
        }
        send_all(fd, &mut send_hdrs, &outs, &to_send);
    }
    Ok(())
}

/// `sendmmsg` until every response went out; one that fails is skipped.
fn send_all(
    fd: i32,
    hdrs: &mut MultiHeaders<SockaddrStorage>,
    outs: &[Vec<u8>],
    to_send: &[(usize, SockaddrStorage)],
) {
    let mut start = 0;
    while start < to_send.len() {
        let rest = &to_send[start..];
        let slices: Vec<[IoSlice<'_>; 1]> = rest
            .iter()
            .map(|(i, _)| [IoSlice::new(&outs[*i])])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = rest.iter().map(|(_, a)| Some(*a)).collect();
        match sendmmsg(fd, hdrs, &slices, &addrs, [], MsgFlags::empty()) {
            Ok(r) => {
                let sent = r.count();
                start += sent.max(1);
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::debug!(error = %e, "udp send failed");
                start += 1;
            }
        }
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}
