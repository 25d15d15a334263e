//! Reading the common query straight from the wire: header, one question,
//! at most an OPT record. Anything else is `None`, and the caller takes the
//! full hickory path, so this reader only has to be right for what it accepts.

const HEADER_LEN: usize = 12;
/// RFC 1035: a name is at most 255 bytes in wire form.
const MAX_NAME: usize = 255;
/// More labels than this never name a record we answer quickly.
pub(crate) const MAX_LABELS: usize = 32;
const TYPE_OPT: u16 = 41;
/// EDNS options hickory decodes into typed values (NSID, DAU, client subnet);
/// malformed ones make it reject the query, so they are left to it.
const TYPED_OPTIONS: [u16; 3] = [3, 5, 8];

/// A plain query, with its name lowercased for lookups.
pub(crate) struct WireQuery<'a> {
    pub id: [u8; 2],
    /// RD and CD, which the response copies.
    pub rd: bool,
    pub cd: bool,
    /// The question as sent (name, type, class), echoed byte for byte.
    pub question: &'a [u8],
    pub qtype: u16,
    /// The client's EDNS UDP size, when it sent an OPT record.
    pub edns_payload: Option<u16>,
    pub name: LowerName,
}

/// A name in wire form without its root label, lowercased, with label starts.
pub(crate) struct LowerName {
    buf: [u8; MAX_NAME],
    len: usize,
    starts: [u8; MAX_LABELS],
    labels: usize,
}

impl LowerName {
    pub(crate) fn wire(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Labels leftmost first, as text (only `[a-z0-9_-]` is accepted).
    pub(crate) fn label(&self, i: usize) -> &str {
        let at = usize::from(self.starts[i]);
        let len = usize::from(self.buf[at]);
        std::str::from_utf8(&self.buf[at + 1..at + 1 + len]).unwrap_or("")
    }

    /// How many leading labels lie below `zone` (wire form, lowercase, no
    /// root label); `None` when the name is not in it.
    pub(crate) fn labels_below(&self, zone: &[u8]) -> Option<usize> {
        if !self.wire().ends_with(zone) {
            return None;
        }
        let at = self.len - zone.len();
        if at == self.len {
            return Some(self.labels);
        }
        self.starts[..self.labels]
            .iter()
            .position(|s| usize::from(*s) == at)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// `None` unless `q` is a query (QR 0, opcode QUERY) with exactly one
/// question of class IN, a name of plain labels (no pointers, only
/// letters, digits, `-` and `_`), and nothing after it but one well-formed
/// EDNS version 0 OPT record.
pub(crate) fn parse(q: &[u8]) -> Option<WireQuery<'_>> {
    if q.len() < HEADER_LEN || q[2] & 0x80 != 0 || (q[2] >> 3) & 0x0f != 0 {
        return None;
    }
    let arcount = u16_at(q, 10)?;
    if q[4..10] != [0, 1, 0, 0, 0, 0] || arcount > 1 {
        return None;
    }
    let mut name = LowerName {
        buf: [0; MAX_NAME],
        len: 0,
        starts: [0; MAX_LABELS],
        labels: 0,
    };
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*q.get(at)?);
        if len == 0 {
            break;
        }
        // Pointers and extended label types (and > 63) are not plain labels.
        if len & 0xc0 != 0 || name.labels == MAX_LABELS || name.len + len + 2 > MAX_NAME {
            return None;
        }
        let label = q.get(at + 1..at + 1 + len)?;
        name.starts[name.labels] = u8::try_from(name.len).ok()?;
        name.labels += 1;
        name.buf[name.len] = len as u8;
        for (dst, b) in name.buf[name.len + 1..].iter_mut().zip(label) {
            if !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
                return None;
            }
            *dst = b.to_ascii_lowercase();
        }
        name.len += len + 1;
        at += len + 1;
    }
    let qtype = u16_at(q, at + 1)?;
    if u16_at(q, at + 3)? != 1 {
        return None;
    }
    let question = &q[HEADER_LEN..at + 5];
    at += 5;
    let edns_payload = if arcount == 1 {
        let (payload, end) = opt(q, at)?;
        at = end;
        Some(payload)
    } else {
        None
    };
    if at != q.len() {
        return None;
    }
    Some(WireQuery {
        id: [q[0], q[1]],
        rd: q[2] & 0x01 != 0,
        cd: q[3] & 0x10 != 0,
        question,
        qtype,
        edns_payload,
        name,
    })
}

/// An OPT record at `at`: root owner, version 0, options that are whole
/// TLVs of kinds hickory keeps as opaque bytes. Returns its UDP size and end.
fn opt(q: &[u8], at: usize) -> Option<(u16, usize)> {
    if *q.get(at)? != 0 || u16_at(q, at + 1)? != TYPE_OPT {
        return None;
    }
    let payload = u16_at(q, at + 3)?;
    // TTL: extended rcode, version, flags; only version 0 is ours to answer.
    if *q.get(at + 6)? != 0 {
        return None;
    }
    let rdlen = usize::from(u16_at(q, at + 9)?);
    let start = at + 11;
    let end = start + rdlen;
    let mut o = start;
    while o < end {
        let code = u16_at(q, o)?;
        let len = usize::from(u16_at(q, o + 2)?);
        if TYPED_OPTIONS.contains(&code) {
            return None;
        }
        o += 4 + len;
    }
    (o == end && end <= q.len()).then_some((payload, end))
}
