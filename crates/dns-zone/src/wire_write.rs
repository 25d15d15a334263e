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

pub(crate) struct Writer<'a, 'o> {
    out: &'o mut Vec<u8>,
    /// (offset in the message, the uncompressed labels from there on).
    suffixes: [(u16, &'a [u8]); MAX_SUFFIXES],
    count: usize,
}

impl<'a, 'o> Writer<'a, 'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        Writer {
            out,
            suffixes: [(0, &[]); MAX_SUFFIXES],
            count: 0,
        }
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

    /// Remember the labels of a name already written at `at` (the question).
    pub(crate) fn remember(&mut self, at: usize, labels: &'a [u8]) {
        self.compress(at, labels, false);
    }

    /// A name in wire form without its root label.
    pub(crate) fn name(&mut self, labels: &'a [u8]) {
        let at = self.out.len();
        self.compress(at, labels, true);
    }

    fn compress(&mut self, at: usize, labels: &'a [u8], write: bool) {
        let mut i = 0;
        while i < labels.len() {
            let rest = &labels[i..];
            let found = self.suffixes[..self.count]
                .iter()
                .find(|(_, s)| *s == rest)
                .map(|(o, _)| *o);
            if let (Some(ptr), true) = (found, write) {
                self.bytes(&labels[..i]);
                self.u16(0xc000 | ptr);
                return;
            }
            // hickory stores while the message is below 0x3fff bytes, measured
            // at the end of the name being written.
            let end = at + labels.len();
            if end < 0x3fff && self.count < MAX_SUFFIXES {
                self.suffixes[self.count] = ((at + i) as u16, rest);
                self.count += 1;
            }
            i += usize::from(labels[i]) + 1;
        }
        if write {
            self.bytes(labels);
            self.out.push(0);
        }
    }

    /// The record header up to the RDATA length, which [`Self::end_rdata`] fills.
    fn record(&mut self, owner_ptr: Option<u16>, owner: &'a [u8], rtype: u16, ttl: u32) -> usize {
        match owner_ptr {
            Some(p) => self.u16(0xc000 | p),
            None => self.name(owner),
        }
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
        let at = self.record(Some(owner_ptr), &[], rtype, ttl);
        match ip {
            IpAddr::V4(v4) => self.bytes(&v4.octets()),
            IpAddr::V6(v6) => self.bytes(&v6.octets()),
        }
        self.end_rdata(at);
    }

    /// The zone's SOA (see `answer::soa_record`), names as wire labels.
    pub(crate) fn soa(&mut self, names: [&'a [u8]; 3], ttl: u32, values: [u32; 5]) {
        let [owner, mname, rname] = names;
        let at = self.record(None, owner, TYPE_SOA, ttl);
        self.name(mname);
        self.name(rname);
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
