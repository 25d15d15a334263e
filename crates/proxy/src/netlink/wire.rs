//! Netlink message and attribute framing for nf_tables (pure): the constants of
//! `linux/netlink.h`, `linux/netfilter/nfnetlink.h` and `nf_tables.h` this crate
//! uses, and a writer that lays out messages and (nested) attributes.

use super::EncodeError;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;

const NLA_F_NESTED: u16 = 0x8000;

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 17;

/// `enum nf_tables_msg_types`.
pub(crate) mod msg {
    pub const NEWTABLE: u8 = 0;
    pub const GETTABLE: u8 = 1;
    pub const DELTABLE: u8 = 2;
    pub const NEWCHAIN: u8 = 3;
    pub const GETCHAIN: u8 = 4;
    pub const DELCHAIN: u8 = 5;
    pub const NEWRULE: u8 = 6;
    pub const GETRULE: u8 = 7;
    pub const DELRULE: u8 = 8;
    pub const NEWSET: u8 = 9;
    pub const GETSET: u8 = 10;
    pub const DELSET: u8 = 11;
    pub const NEWSETELEM: u8 = 12;
    pub const GETSETELEM: u8 = 13;
    pub const DELSETELEM: u8 = 14;
    pub const GETGEN: u8 = 16;
}

pub(crate) const NFPROTO_IPV4: u8 = 2;

/// Builds a buffer of netlink messages.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    /// Starts a message with its nfgenmsg header; finish it with [`Writer::end_msg`].
    pub(crate) fn begin_msg(
        &mut self,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    pub(crate) fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub(crate) fn bytes(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// Bytes that already are attributes (copied from a reply), inside a nest.
    pub(crate) fn raw(&mut self, attrs: &[u8]) {
        self.buf.extend_from_slice(attrs);
    }

    /// A NUL-terminated string, as the kernel's NLA_STRING policies expect.
    pub(crate) fn str(&mut self, ty: u16, s: &str) {
        let len = (4 + s.len() + 1) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    pub(crate) fn be32(&mut self, ty: u16, v: u32) {
        self.bytes(ty, &v.to_be_bytes());
    }

    pub(crate) fn be64(&mut self, ty: u16, v: u64) {
        self.bytes(ty, &v.to_be_bytes());
    }

    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Writer)) {
        let start = self.begin_nest(ty);
        f(self);
        self.end_nest(start);
    }

    /// Opens a nest that stays open across calls; close it with [`Writer::end_nest`].
    pub(crate) fn begin_nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub(crate) fn end_nest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// nftnl's userdata TLV for a comment (type 0 for rules, set elements; 7 for sets):
/// type, length, NUL-terminated text.
pub(crate) fn udata_comment(out: &mut Vec<u8>, ty: u8, comment: &str) -> Result<(), EncodeError> {
    if comment.len() > 254 {
        return Err(EncodeError::Unsupported(format!(
            "comment of {} bytes (at most 254)",
            comment.len()
        )));
    }
    out.push(ty);
    out.push((comment.len() + 1) as u8);
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_flagged() {
        let mut w = Writer::default();
        w.str(1, "kinet");
        w.nest(3, |w| w.be32(1, 7));
        let ne = |v: u16| v.to_ne_bytes();
        let mut want = Vec::new();
        want.extend_from_slice(&ne(10));
        want.extend_from_slice(&ne(1));
        want.extend_from_slice(b"kinet\0\0\0");
        want.extend_from_slice(&ne(12));
        want.extend_from_slice(&ne(3 | 0x8000));
        want.extend_from_slice(&ne(8));
        want.extend_from_slice(&ne(1));
        want.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(w.buf, want);
    }

    #[test]
    fn message_length_covers_header_and_attributes() {
        let mut w = Writer::default();
        let start = w.begin_msg(0x0a06, NLM_F_REQUEST, 9, NFPROTO_IPV4, 0);
        w.be32(1, 1);
        w.end_msg(start);
        assert_eq!(w.buf.len(), 28);
        assert_eq!(u32::from_ne_bytes(w.buf[0..4].try_into().unwrap()), 28);
        assert_eq!(u32::from_ne_bytes(w.buf[8..12].try_into().unwrap()), 9);
        assert_eq!(w.buf[16], NFPROTO_IPV4);
    }

    #[test]
    fn comment_udata_is_nul_terminated() {
        let mut out = Vec::new();
        udata_comment(&mut out, 0, "hi").unwrap();
        assert_eq!(out, [0, 3, b'h', b'i', 0]);
        assert!(udata_comment(&mut out, 0, &"x".repeat(255)).is_err());
    }
}
