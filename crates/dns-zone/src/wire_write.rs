//! Writing a response directly, compressing names the way hickory's encoder
//! does (so the bytes match the full path's): every label suffix written is
//! remembered, and a later name whose remaining labels equal one, byte for
//! byte, points at it.

use std::net::IpAddr;

/// hickory keeps at most this many suffixes (`COMPRESSION_CANDIDATE_LIMIT`).
const MAX_SUFFIXES: usize = 64;
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_SOA: u16 = 6;
pub(crate) const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

pub(crate) struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

/// The label suffixes written so far: (offset in the message, the
/// uncompressed labels from there on). Only negative answers need it (their
/// SOA names), so positive ones skip setting it up.
struct Suffixes<'a> {
    list: [(u16, &'a [u8]); MAX_SUFFIXES],
    count: usize,
}

impl<'a> Suffixes<'a> {
    fn new() -> Self {
        Suffixes {
            list: [(0, &[]); MAX_SUFFIXES],
            count: 0,
        }
    }

    /// Where to point for `labels`, a name written at `at`: how many bytes to
    /// write before the pointer, and the pointer. Each suffix not found on the
    /// way is remembered, as hickory does.
    fn find_or_add(&mut self, at: usize, labels: &'a [u8]) -> Option<(usize, u16)> {
        let mut i = 0;
        while i < labels.len() {
            let rest = &labels[i..];
            let found = self.list[..self.count].iter().find(|(_, s)| *s == rest);
            if let Some((ptr, _)) = found {
                return Some((i, *ptr));
            }
            // hickory stores while the message is below 0x3fff bytes, measured
            // at the end of the name being written.
            if at + labels.len() < 0x3fff && self.count < MAX_SUFFIXES {
                self.list[self.count] = ((at + i) as u16, rest);
                self.count += 1;
            }
            i += usize::from(labels[i]) + 1;
        }
        None
    }
}

impl<'o> Writer<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        Writer { out }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// A name in wire form without its root label, compressed against `table`.
    fn name<'a>(&mut self, table: &mut Suffixes<'a>, labels: &'a [u8]) {
        match table.find_or_add(self.out.len(), labels) {
            Some((i, ptr)) => {
                self.bytes(&labels[..i]);
                self.u16(0xc000 | ptr);
            }
            None => {
                self.bytes(labels);
                self.out.push(0);
            }
        }
    }

    /// The record header up to the RDATA length, which [`Self::end_rdata`] fills.
    fn record(&mut self, rtype: u16, ttl: u32) -> usize {
        self.u16(rtype);
        self.u16(CLASS_IN);
        self.u32(ttl);
        let at = self.out.len();
        self.u16(0);
        at
    }

    fn end_rdata(&mut self, at: usize) {
        let len = (self.out.len() - at - 2) as u16;
        self.out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// An A or AAAA record owned by the name at `owner_ptr` (the question).
    pub(crate) fn addr(&mut self, owner_ptr: u16, ttl: u32, ip: &IpAddr) {
        let rtype = if ip.is_ipv4() { TYPE_A } else { TYPE_AAAA };
        self.u16(0xc000 | owner_ptr);
        let at = self.record(rtype, ttl);
        match ip {
            IpAddr::V4(v4) => self.bytes(&v4.octets()),
            IpAddr::V6(v6) => self.bytes(&v6.octets()),
        }
        self.end_rdata(at);
    }

    /// The zone's SOA (see `answer::soa_record`), names as wire labels, after
    /// a question whose name `question` was written at `question_at` and
    /// nothing else that holds a name.
    pub(crate) fn soa<'a>(
        &mut self,
        (question_at, question): (usize, &'a [u8]),
        names: [&'a [u8]; 3],
        ttl: u32,
        values: [u32; 5],
    ) {
        let mut table = Suffixes::new();
        table.find_or_add(question_at, question);
        let [owner, mname, rname] = names;
        self.name(&mut table, owner);
        let at = self.record(TYPE_SOA, ttl);
        self.name(&mut table, mname);
        self.name(&mut table, rname);
        for v in values {
            self.u32(v);
        }
        self.end_rdata(at);
    }

    /// An EDNS version 0 OPT record with no flags or options.
    pub(crate) fn opt(&mut self, payload: u16) {
        self.out.push(0);
        self.u16(TYPE_OPT);
        self.u16(payload);
        self.u32(0);
        self.u16(0);
    }

    pub(crate) fn set_u16(&mut self, at: usize, v: u16) {
        self.out[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}
