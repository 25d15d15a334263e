//! The applier's one seam to the kernel: exactly the nfnetlink calls it makes, so its
//! decisions (first load, incremental, resync, repair, refusals, UDP flushes) can be
//! tested against a fake table without root.

use std::net::SocketAddrV4;
use std::path::PathBuf;

use kinet_proxy_rules::{Loaded, Update};

use crate::netlink::{LoadedRule, NetlinkError, NftSocket};

/// One table's kernel as the applier sees it. Every call may fail; after a failure the
/// applier calls [`NftBackend::reset`] so the next call starts on a clean connection.
pub trait NftBackend {
    /// The namespace's ruleset generation (bumped by every commit, anyone's).
    fn generation(&mut self) -> Result<u32, NetlinkError>;
    /// The table as the kernel holds it, `None` if absent.
    fn read_table(&mut self, table: &str) -> Result<Option<Loaded<LoadedRule>>, NetlinkError>;
    /// Sends `update` as one atomic transaction.
    fn apply(&mut self, update: &Update) -> Result<(), NetlinkError>;
    /// Deletes the conntrack entries of UDP flows to `ep`; how many.
    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize, NetlinkError>;
    /// Drops the connection (unread replies may be left in it).
    fn reset(&mut self);
}

/// The real kernel: an [`NftSocket`] opened in the namespace at first use and kept (it
/// stays in the namespace it was made in).
#[derive(Debug)]
pub struct NetnsNft {
    netns: PathBuf,
    socket: Option<NftSocket>,
}

impl NetnsNft {
    pub fn new(netns: PathBuf) -> NetnsNft {
        NetnsNft {
            netns,
            socket: None,
        }
    }

    fn socket(&mut self) -> Result<&mut NftSocket, NetlinkError> {
        if self.socket.is_none() {
            self.socket = Some(NftSocket::open_in(&self.netns)?);
        }
        Ok(self.socket.as_mut().expect("just opened"))
    }
}

impl NftBackend for NetnsNft {
    fn generation(&mut self) -> Result<u32, NetlinkError> {
        self.socket()?.generation()
    }

    fn read_table(&mut self, table: &str) -> Result<Option<Loaded<LoadedRule>>, NetlinkError> {
        self.socket()?.read_table(table)
    }

    fn apply(&mut self, update: &Update) -> Result<(), NetlinkError> {
        self.socket()?.apply(update)
    }

    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize, NetlinkError> {
        self.socket()?.flush_udp_to(ep)
    }

    fn reset(&mut self) {
        self.socket = None;
    }
}
