//! The I/O half: a NETLINK_NETFILTER socket living in a node's network namespace,
//! sending one batch per update and collecting an ack or error for every message.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use kinet_proxy_rules::Update;
use netlink_sys::{constants::NETLINK_NETFILTER, Socket};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::encode::encode_update;
use super::wire::{NLMSG_ERROR, NLMSG_HDRLEN};
use super::NetlinkError;

/// The kernel may take seconds to commit a large batch; it never takes this long.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// What the kernel charges the receive buffer per ack: 36 bytes of message, but the
/// socket buffer's overhead (truesize) dominates.
const ACK_COST: usize = 1024;
/// The kernel halves larger SO_RCVBUFFORCE values anyway.
const MAX_RCVBUF: usize = 1 << 30;

/// An nf_tables netlink socket bound inside one network namespace.
#[derive(Debug)]
pub struct NftSocket {
    sock: Socket,
    seq: u32,
    sndbuf: usize,
    rcvbuf: usize,
}

impl NftSocket {
    /// Opens the socket inside the namespace at `netns` (`/run/netns/<name>`,
    /// `/proc/<pid>/ns/net`). A socket stays in the namespace it was made in, so it is
    /// made on a short-lived thread that entered the namespace, and no other thread
    /// ever switches.
    pub fn open_in(netns: &Path) -> Result<NftSocket, NetlinkError> {
        let path = netns.to_path_buf();
        let shown = path.display().to_string();
        let made = std::thread::spawn(move || -> Result<Socket, NetlinkError> {
            let ns_err = |source: io::Error| NetlinkError::Netns {
                path: path.display().to_string(),
                source,
            };
            let file = File::open(&path).map_err(ns_err)?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| ns_err(e.into()))?;
            let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NetlinkError::Socket)?;
            sock.bind_auto().map_err(NetlinkError::Socket)?;
            Ok(sock)
        })
        .join()
        .map_err(|_| NetlinkError::Netns {
            path: shown,
            source: io::Error::other("thread panicked"),
        })??;
        // Errors carry only the failed message's header, not the whole message.
        made.set_cap_ack(true).map_err(NetlinkError::Socket)?;
        setsockopt(
            &made,
            sockopt::ReceiveTimeout,
            &TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(|e| NetlinkError::Socket(e.into()))?;
        Ok(NftSocket {
            sock: made,
            seq: 1,
            sndbuf: 0,
            rcvbuf: 0,
        })
    }

    /// Applies `update` as one transaction; on error the kernel changed nothing.
    pub fn apply(&mut self, update: &Update) -> Result<(), NetlinkError> {
        if update.is_empty() {
            return Ok(());
        }
        if self.seq > u32::MAX / 2 {
            self.seq = 1; // far from wrapping inside any batch
        }
        let batch = encode_update(update, self.seq)?;
        let acked = batch.acked_seqs();
        self.seq = acked.end.wrapping_add(1);
        // The batch is one datagram, and all acks arrive before we read any: make room.
        self.grow_buffers(batch.bytes.len(), batch.origins.len() * ACK_COST)?;
        self.sock
            .send(&batch.bytes, 0)
            .map_err(NetlinkError::Socket)?;

        let mut seen = vec![false; batch.origins.len()];
        let mut missing = seen.len();
        let mut errors: Vec<(u32, i32)> = Vec::new();
        let mut commit_error = None;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        while missing > 0 {
            buf.clear();
            self.sock.recv(&mut buf, 0).map_err(|e| {
                if e.raw_os_error() == Some(Errno::ENOBUFS as i32) {
                    NetlinkError::RepliesLost
                } else {
                    NetlinkError::Socket(e)
                }
            })?;
            for (seq, errno) in parse_replies(&buf)? {
                if seq == batch.first_seq {
                    commit_error = Some(errno);
                } else if acked.contains(&seq) {
                    let i = (seq - acked.start) as usize;
                    if !seen[i] {
                        seen[i] = true;
                        missing -= 1;
                    }
                    if errno != 0 {
                        errors.push((seq, errno));
                    }
                }
            }
        }
        if let Some(&(seq, errno)) = errors.iter().min() {
            return Err(NetlinkError::Rejected {
                what: batch
                    .describe(update, seq)
                    .unwrap_or_else(|| format!("message {seq}")),
                source: io::Error::from_raw_os_error(errno),
                more: errors.len() - 1,
            });
        }
        match commit_error {
            Some(errno) if errno != 0 => {
                Err(NetlinkError::Commit(io::Error::from_raw_os_error(errno)))
            }
            _ => Ok(()),
        }
    }

    fn grow_buffers(&mut self, send: usize, recv: usize) -> Result<(), NetlinkError> {
        let want_snd = send + 4096;
        if want_snd > self.sndbuf {
            setsockopt(&self.sock, sockopt::SndBufForce, &want_snd)
                .map_err(|e| NetlinkError::Socket(e.into()))?;
            self.sndbuf = want_snd;
        }
        let want_rcv = (recv.max(1 << 16) + 4096).min(MAX_RCVBUF);
        if want_rcv > self.rcvbuf {
            setsockopt(&self.sock, sockopt::RcvBufForce, &want_rcv)
                .map_err(|e| NetlinkError::Socket(e.into()))?;
            self.rcvbuf = want_rcv;
        }
        Ok(())
    }
}

/// The (sequence number, errno) of every NLMSG_ERROR in one datagram; errno 0 is an ack.
fn parse_replies(mut buf: &[u8]) -> Result<Vec<(u32, i32)>, NetlinkError> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(NetlinkError::Malformed(format!(
                "message length {len} of {} bytes",
                buf.len()
            )));
        }
        let ty = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        if ty == NLMSG_ERROR {
            let body = &buf[NLMSG_HDRLEN..len];
            let code = body
                .get(0..4)
                .ok_or_else(|| NetlinkError::Malformed("short error message".into()))?;
            let errno = -i32::from_ne_bytes(code.try_into().expect("4 bytes"));
            out.push((seq, errno));
        }
        let next = ((len + 3) & !3).min(buf.len());
        buf = &buf[next..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(seq: u32, err: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&err.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn replies_are_acks_and_errors_by_sequence() {
        let mut buf = reply(7, 0);
        buf.extend(reply(8, -2));
        assert_eq!(parse_replies(&buf).unwrap(), vec![(7, 0), (8, 2)]);
    }

    #[test]
    fn a_truncated_reply_is_an_error() {
        let buf = reply(7, 0);
        assert!(parse_replies(&buf[..30]).is_err());
    }
}
