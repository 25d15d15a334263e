//! The I/O half: a NETLINK_NETFILTER socket living in a node's network namespace,
//! sending one batch per update and collecting an ack or error for every message.

use std::io;
use std::path::Path;
use std::time::Duration;

use kinet_proxy_rules::Update;
use netlink_sys::{constants::NETLINK_NETFILTER, Socket};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use kinet_proxy_rules::Loaded;

use super::encode::{encode_update, Batch};
use super::policy::encode_policy;
use super::policy_read::loaded_policy;
use super::read::{loaded_table, static_set, Dumps, LoadedRule};
use super::wire::{
    msg, Writer, NFNL_SUBSYS_NFTABLES, NFPROTO_IPV4, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK,
    NLM_F_REQUEST,
};
use super::NetlinkError;

const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP: u16 = 0x300;
/// Set on a dump's messages when the ruleset changed while it ran.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// Tries at reading a table that keeps changing under the dump.
const READ_TRIES: usize = 3;
/// The nfgenmsg header after the netlink header.
const NFGENMSG_LEN: usize = 4;

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
        let made = kinet_netns::run_in(netns, || -> Result<Socket, NetlinkError> {
            let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NetlinkError::Socket)?;
            sock.bind_auto().map_err(NetlinkError::Socket)?;
            Ok(sock)
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
        self.send_batch(&batch, |seq| batch.describe(update, seq))
    }

    /// Applies a NetworkPolicy table update as one transaction; on error the kernel changed
    /// nothing.
    pub fn apply_policy(&mut self, update: &kinet_policy::Update) -> Result<(), NetlinkError> {
        if self.seq > u32::MAX / 2 {
            self.seq = 1;
        }
        let (batch, lines) = encode_policy(update, self.seq)?;
        self.send_batch(&batch, |seq| {
            let i = seq.checked_sub(batch.first_seq + 1)? as usize;
            let origin = batch.origins.get(i)?;
            Some(origin.describe(lines.text(origin.change)?))
        })
    }

    /// Sends `batch` and waits for every acknowledgement; `describe` names a refused
    /// message by its sequence number.
    fn send_batch(
        &mut self,
        batch: &Batch,
        describe: impl Fn(u32) -> Option<String>,
    ) -> Result<(), NetlinkError> {
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
                what: describe(seq).unwrap_or_else(|| format!("message {seq}")),
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

    /// The ruleset generation of the namespace: the kernel counts every committed
    /// transaction (by anyone), while the packet path's set updates are not commits.
    pub fn generation(&mut self) -> Result<u32, NetlinkError> {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg::GETGEN);
        let reply = match self.request_in(ty, 0, false, |_| {})? {
            Reply::Messages(m) => m,
            Reply::Missing => Vec::new(),
        };
        reply
            .iter()
            .find_map(|m| {
                let a = super::read::attrs(m).ok()?;
                let id = super::read::get(&a, 1)?; // NFTA_GEN_ID
                Some(u32::from_be_bytes(id.get(..4)?.try_into().ok()?))
            })
            .ok_or_else(|| NetlinkError::Malformed("no generation in the reply".into()))
    }

    /// What the kernel holds for table `ip <table>`, or `None` if there is no such table.
    /// Dynamic sets' elements are not read: they belong to the packet path.
    pub fn read_table(&mut self, table: &str) -> Result<Option<Loaded<LoadedRule>>, NetlinkError> {
        self.retrying(|me| me.dump(table)?.map(|d| loaded_table(&d)).transpose())
    }

    /// The NetworkPolicy table `ip <table>` as the kernel holds it, or `None` if there is
    /// no such table. The dumps are several requests: a commit between them (the
    /// generation moved) reads again.
    pub fn read_policy(
        &mut self,
        table: &str,
    ) -> Result<Option<kinet_policy::Ruleset>, NetlinkError> {
        self.retrying(|me| {
            let before = me.generation()?;
            let Some(d) = me.dump(table)? else {
                return Ok(None);
            };
            let counters = me.counters(table)?.into_iter().map(|c| c.0);
            let rs = loaded_policy(table, &d, counters)?;
            if me.generation()? != before {
                return Err(NetlinkError::Interrupted);
            }
            Ok(Some(rs))
        })
    }

    /// Brings the NetworkPolicy table to `desired`: reads it back and sends only what
    /// differs, in one transaction; `None` when it already matched (nothing sent). A
    /// table that is absent, or holds what kinet never writes, is replaced whole.
    pub fn resync_policy(
        &mut self,
        desired: &kinet_policy::Ruleset,
    ) -> Result<Option<kinet_policy::Update>, NetlinkError> {
        let held = match self.read_policy(&desired.table) {
            Ok(held) => held,
            Err(NetlinkError::Malformed(why)) => {
                tracing::info!(%why, "the policy table holds rules kinet did not write: replacing it");
                None
            }
            Err(e) => return Err(e),
        };
        let update = kinet_policy::plan(held.as_ref(), desired);
        if let Some(u) = &update {
            self.apply_policy(u)?;
        }
        Ok(update)
    }

    /// Runs `read` again while the table changed under its dumps.
    fn retrying<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match read(self) {
                Err(NetlinkError::Interrupted) if tries < READ_TRIES => continue,
                other => return other,
            }
        }
    }

    /// The dumps of table `ip <table>`: chains, rules, sets, and the elements of every set
    /// and map but the dynamic (timeout) ones.
    fn dump(&mut self, table: &str) -> Result<Option<Dumps>, NetlinkError> {
        let name = |w: &mut Writer| w.str(1, table);
        if self.request(msg::GETTABLE, false, name)? == Reply::Missing {
            return Ok(None);
        }
        let dump = |me: &mut Self, ty| -> Result<Vec<Vec<u8>>, NetlinkError> {
            match me.request(ty, true, name)? {
                Reply::Messages(m) => Ok(m),
                Reply::Missing => Ok(Vec::new()),
            }
        };
        let mut d = Dumps {
            chains: dump(self, msg::GETCHAIN)?,
            rules: Vec::new(),
            sets: dump(self, msg::GETSET)?,
            elements: Vec::new(),
        };
        // Chains and sets are dumped for every table: keep this one's.
        let ours = |m: &Vec<u8>| {
            super::read::attrs(m).is_ok_and(|a| {
                a.iter()
                    .any(|(t, v)| *t == 1 && v.split(|b| *b == 0).next() == Some(table.as_bytes()))
            })
        };
        d.chains.retain(ours);
        d.sets.retain(ours);
        // Rules chain by chain: the kernel finds a named chain by hash, while one dump of
        // the whole table re-walks every rule before the resume point at each of its
        // thousands of parts, quadratic at 10,000 Services.
        let names: Vec<String> = d
            .chains
            .iter()
            .filter_map(|m| {
                let a = super::read::attrs(m).ok()?;
                let name = super::read::get(&a, 3)?;
                Some(String::from_utf8_lossy(name.split(|b| *b == 0).next()?).into_owned())
            })
            .collect();
        for chain in names {
            let r = self.request(msg::GETRULE, true, |w| {
                w.str(1, table);
                w.str(2, &chain);
            })?;
            if let Reply::Messages(m) = r {
                d.rules.extend(m);
            }
        }
        let mut wanted = Vec::new();
        for m in &d.sets {
            if let Some(name) = static_set(m)? {
                wanted.push(name);
            }
        }
        for set in wanted {
            let r = self.request(msg::GETSETELEM, true, |w| {
                w.str(1, table);
                w.str(2, &set);
            })?;
            if let Reply::Messages(m) = r {
                d.elements.push((set, m));
            }
        }
        Ok(Some(d))
    }

    /// The named counters of table `ip <table>` as `(name, packets, bytes)`, sorted by name;
    /// none when the table is absent.
    pub fn counters(&mut self, table: &str) -> Result<Vec<(String, u64, u64)>, NetlinkError> {
        const GETOBJ: u8 = 19;
        let reply = self.request(GETOBJ, true, |w| {
            w.str(1, table); // NFTA_OBJ_TABLE
            w.be32(3, 1); // NFTA_OBJ_TYPE: NFT_OBJECT_COUNTER
        })?;
        let Reply::Messages(messages) = reply else {
            return Ok(Vec::new());
        };
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
        };
        let be64 = |b: Option<&[u8]>| {
            b.and_then(|b| b.get(..8)?.try_into().ok())
                .map_or(0, u64::from_be_bytes)
        };
        let mut out = Vec::new();
        for m in &messages {
            let a = super::read::attrs(m)?;
            if super::read::get(&a, 1).map(text).as_deref() != Some(table) {
                continue;
            }
            let (Some(name), Some(data)) = (super::read::get(&a, 2), super::read::get(&a, 4))
            else {
                return Err(NetlinkError::Malformed(
                    "a counter without name or data".into(),
                ));
            };
            let d = super::read::attrs(data)?;
            // NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS
            out.push((
                text(name),
                be64(super::read::get(&d, 2)),
                be64(super::read::get(&d, 1)),
            ));
        }
        out.sort();
        Ok(out)
    }

    /// Sends one nf_tables request (a dump if `dump`) and collects the replies'
    /// attributes; `Missing` when the kernel answers ENOENT.
    fn request(
        &mut self,
        ty: u8,
        dump: bool,
        body: impl FnOnce(&mut Writer),
    ) -> Result<Reply, NetlinkError> {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(ty);
        self.request_in(ty, NFPROTO_IPV4, dump, body)
    }

    /// [`NftSocket::request`] for any nfnetlink subsystem: `ty` is the whole message type.
    pub(crate) fn request_in(
        &mut self,
        ty: u16,
        family: u8,
        dump: bool,
        body: impl FnOnce(&mut Writer),
    ) -> Result<Reply, NetlinkError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut w = Writer::default();
        // A dump ends with DONE; a single reply is followed by the ack asked for.
        let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        let start = w.begin_msg(ty, flags, seq, family, 0);
        body(&mut w);
        w.end_msg(start);
        self.sock.send(&w.buf, 0).map_err(NetlinkError::Socket)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
        loop {
            buf.clear();
            self.sock.recv(&mut buf, 0).map_err(NetlinkError::Socket)?;
            for m in messages(&buf)? {
                if m.seq != seq {
                    continue; // a late reply to an earlier request
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.ty {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let errno = m
                            .body
                            .get(0..4)
                            .map_or(0, |c| -i32::from_ne_bytes(c.try_into().expect("4 bytes")));
                        return match errno {
                            0 if interrupted => Err(NetlinkError::Interrupted),
                            0 => Ok(Reply::Messages(out)),
                            e if e == Errno::ENOENT as i32 => Ok(Reply::Missing),
                            e => Err(NetlinkError::Socket(io::Error::from_raw_os_error(e))),
                        };
                    }
                    _ => out.push(m.body.get(NFGENMSG_LEN..).unwrap_or_default().to_vec()),
                }
            }
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

/// What a get request found.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    Messages(Vec<Vec<u8>>),
    Missing,
}

/// One netlink message of a datagram.
struct Message<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    body: &'a [u8],
}

/// The messages of one datagram.
fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, NetlinkError> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(NetlinkError::Malformed(format!(
                "message length {len} of {} bytes",
                buf.len()
            )));
        }
        out.push(Message {
            ty: u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes")),
            flags: u16::from_ne_bytes(buf[6..8].try_into().expect("2 bytes")),
            seq: u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes")),
            body: &buf[NLMSG_HDRLEN..len],
        });
        let next = ((len + 3) & !3).min(buf.len());
        buf = &buf[next..];
    }
    Ok(out)
}

/// The (sequence number, errno) of every NLMSG_ERROR in one datagram; errno 0 is an ack.
fn parse_replies(buf: &[u8]) -> Result<Vec<(u32, i32)>, NetlinkError> {
    let mut out = Vec::new();
    for m in messages(buf)? {
        if m.ty == NLMSG_ERROR {
            let code = m
                .body
                .get(0..4)
                .ok_or_else(|| NetlinkError::Malformed("short error message".into()))?;
            out.push((
                m.seq,
                -i32::from_ne_bytes(code.try_into().expect("4 bytes")),
            ));
        }
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
