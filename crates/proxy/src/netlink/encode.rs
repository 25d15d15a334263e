//! An [`Update`] as one nfnetlink batch (pure): BATCH_BEGIN, one nf_tables message
//! per object change (a random choice's cascade is one message per rule), BATCH_END.
//! The kernel runs the batch as one transaction: all of it or nothing.

use std::collections::HashMap;

use kinet_proxy_rules::{
    Action, BaseChain, Change, Hook, LookupKey, Map, MapEntry, MapKey, MapVerdict, Proto, Rule,
    Set, SetKey, Update,
};

use super::expr::{check_rule, proto_number, NewSets, RuleExprs, Verdict};
use super::read::{canonical_rule, LoadedRule};
use super::wire::{
    msg, udata_comment, Writer, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
    NFPROTO_IPV4, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use super::EncodeError;

/// nft's datatype id of `ipv4_addr` and the byte order it records in a set's userdata.
pub(super) const TYPE_IPADDR: u32 = 7;
pub(super) const BYTEORDER_BIG_ENDIAN: u32 = 2;
pub(crate) const NFT_SET_MAP: u32 = 0x08;
pub(crate) const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_EVAL: u32 = 0x20;
const NFT_SET_INTERVAL: u32 = 0x04;
/// `NFT_SET_ELEM_INTERVAL_END`: the element closing an interval.
const ELEM_INTERVAL_END: u32 = 0x01;
/// `NFTNL_UDATA_SET_ELEM_FLAGS` holding `NFTNL_SET_ELEM_F_INTERVAL_OPEN`: nft's mark on an
/// interval that runs to the end of the key space (it sends no end element for it).
const ELEM_UDATA_OPEN: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// How an element's interval ends, after its key.
enum End {
    /// Not an interval.
    None,
    /// At this key (one past the interval's last number).
    At([u8; 4]),
    /// With the key space.
    Open,
}
/// nft's `integer` datatype: the key of an endpoint map (`numgen`).
const TYPE_INTEGER: u32 = 4;
/// `ipv4_addr . inet_service` (an endpoint) and `ipv4_addr . ipv4_addr` (hairpin pairs).
pub(crate) const TYPE_ADDR_PORT: u32 = (7 << 6) | 13;
pub(crate) const TYPE_ADDR_ADDR: u32 = (7 << 6) | 7;
/// The userdata nft 1.0.6 gives a `ipv4_addr . ipv4_addr` set: key byte order (none) and
/// its field types.
const PAIR_SET_UDATA: [u8; 16] = [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0];
/// The userdata nft 1.0.6 gives `typeof numgen random mod 65536 : ip daddr . tcp dport`
/// (the `typeof` expressions); byte `RANDOM_MAP_PROTO_AT` names the transport protocol.
pub(crate) const RANDOM_MAP_UDATA: [u8; 100] = [
    0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 26, 0, 4, 23, 0, 0, 0, 1, 18, 0, 4, 1, 0, 0, 0, 1, 4, 0,
    0, 1, 0, 2, 4, 0, 0, 0, 0, 4, 52, 0, 4, 13, 0, 0, 0, 1, 44, 0, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0,
    4, 12, 0, 0, 0, 1, 4, 12, 0, 0, 0, 1, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 8, 0, 0, 0, 1, 4, 2,
    0, 0, 0, 6, 4, 0, 0, 0, 0,
];
pub(crate) const RANDOM_MAP_PROTO_AT: usize = 84;

/// nft's own number for a transport header in `typeof` userdata.
pub(crate) fn typeof_proto(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 8,
        Proto::Udp => 6,
        Proto::Sctp => 10,
    }
}
/// `NFT_DATA_VERDICT`: the data type of a verdict map.
pub(super) const DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's concatenated datatypes (6 bits per field): `ipv4_addr . inet_proto .
/// inet_service` and `inet_proto . inet_service`.
pub(crate) const TYPE_ADDR_PROTO_PORT: u32 = (((7 << 6) | 12) << 6) | 13;
pub(crate) const TYPE_PROTO_PORT: u32 = (12 << 6) | 13;
/// The userdata nft 1.0.6 gives a verdict map with a concatenated key: key and data
/// byte order (none), the key's field types, and "data is not an interval".
const MAP_UDATA: [u8; 28] = [
    0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0,
];

/// The bytes of one batch and, for each message in it, where it came from.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Every message, BATCH_BEGIN to BATCH_END, ready for one `send`.
    pub bytes: Vec<u8>,
    /// Sequence number of BATCH_BEGIN; message `i` of `origins` has `first_seq + 1 + i`.
    pub first_seq: u32,
    /// Where each message comes from.
    pub origins: Vec<Origin>,
}

/// Where one message of a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The index of its change in the update.
    pub change: usize,
    /// Which of that change's `nft` lines it is (a random choice loads as several rules).
    pub line: usize,
    /// How many changes after `change` added their elements to this message too.
    pub more: usize,
}

impl Origin {
    /// `text` (the first change's line) with the elements that share its message.
    pub fn describe(&self, text: String) -> String {
        match self.more {
            0 => text,
            n => format!("{text} (and {n} more elements in the same message)"),
        }
    }
}

impl Batch {
    /// Sequence numbers of the messages the kernel acknowledges, in order.
    pub fn acked_seqs(&self) -> std::ops::Range<u32> {
        self.first_seq + 1..self.first_seq + 1 + self.origins.len() as u32
    }

    /// The `nft` text of the message with sequence number `seq` (for errors).
    pub fn describe(&self, update: &Update, seq: u32) -> Option<String> {
        let i = seq.checked_sub(self.first_seq + 1)? as usize;
        let origin = self.origins.get(i)?;
        let one = Update {
            table: update.table.clone(),
            changes: vec![update.changes.get(origin.change)?.clone()],
        };
        let line = one
            .to_nft()
            .lines()
            .nth(origin.line)?
            .trim_end()
            .to_string();
        Some(origin.describe(line))
    }
}

/// Encodes `update` as one batch whose messages are numbered from `first_seq`; every
/// message between BATCH_BEGIN and BATCH_END asks for an acknowledgement.
pub fn encode_update(update: &Update, first_seq: u32) -> Result<Batch, EncodeError> {
    let mut enc = Encoder {
        out: Out::begin(&update.table, first_seq),
        new_sets: HashMap::new(),
    };
    for (i, change) in update.changes.iter().enumerate() {
        enc.out.change = i;
        enc.change(change)?;
    }
    Ok(enc.out.finish())
}

/// The batch being written: BATCH_BEGIN, then nf_tables messages on table `ip <table>`.
pub(super) struct Out<'a> {
    pub(super) w: Writer,
    table: &'a str,
    seq: u32,
    first_seq: u32,
    origins: Vec<Origin>,
    /// Index of the change being encoded.
    pub(super) change: usize,
    /// The element message still taking elements.
    open: Option<OpenList>,
}

/// An element message left open: consecutive elements of one set share it, as nft sends
/// the elements of one command. The kernel looks the set up by name (a walk over the
/// table's sets) and acknowledges once per message, not per element.
struct OpenList {
    ty: u8,
    set: String,
    id: Option<u32>,
    msg: usize,
    list: usize,
    /// List items so far: nft numbers them from 1.
    items: u16,
}

/// The element list a message may grow to before the next element starts a new message:
/// attribute lengths are 16 bits, and one element stays well under the rest.
const LIST_CAP: usize = 32 * 1024;

impl<'a> Out<'a> {
    /// Starts a batch whose messages are numbered from `first_seq`.
    pub(super) fn begin(table: &'a str, first_seq: u32) -> Out<'a> {
        let mut w = Writer::default();
        let start = w.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        w.end_msg(start);
        Out {
            w,
            table,
            seq: first_seq,
            first_seq,
            origins: Vec::new(),
            change: 0,
            open: None,
        }
    }

    /// Ends the batch with BATCH_END.
    pub(super) fn finish(mut self) -> Batch {
        self.close_list();
        self.seq += 1;
        let start = self.w.begin_msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end_msg(start);
        Batch {
            bytes: self.w.buf,
            first_seq: self.first_seq,
            origins: self.origins,
        }
    }

    /// One nf_tables message of the current change: `line` is its line in the change's
    /// `nft` text; `body` writes the attributes after the table name.
    pub(super) fn message(
        &mut self,
        ty: u8,
        flags: u16,
        line: usize,
        body: impl FnOnce(&mut Writer),
    ) {
        let start = self.begin_message(ty, flags, line);
        body(&mut self.w);
        self.w.end_msg(start);
    }

    /// Starts a message of the current change, after closing an open element list.
    fn begin_message(&mut self, ty: u8, flags: u16, line: usize) -> usize {
        self.close_list();
        self.seq += 1;
        self.origins.push(Origin {
            change: self.change,
            line,
            more: 0,
        });
        let start = self.w.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(ty),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            NFPROTO_IPV4,
            0,
        );
        self.w.str(1, self.table);
        start
    }

    /// Elements of the current change for `set` (`id`: the batch's id of a set it
    /// creates), added (`NEWSETELEM`) or deleted (`DELSETELEM`): `items` writes the list
    /// items, numbering each from the counter. They join the previous change's message
    /// when that one holds the same operation on the same set and has room.
    pub(super) fn elements(
        &mut self,
        ty: u8,
        set: &str,
        id: Option<u32>,
        items: impl FnOnce(&mut Writer, &mut u16),
    ) {
        let joins = self.open.as_ref().is_some_and(|o| {
            o.ty == ty && o.set == set && o.id == id && self.w.buf.len() - o.list < LIST_CAP
        });
        if joins {
            self.origins
                .last_mut()
                .expect("an open list has a message")
                .more += 1;
        } else {
            let flags = match ty {
                msg::NEWSETELEM => NLM_F_CREATE,
                _ => 0,
            };
            let msg = self.begin_message(ty, flags, 0);
            self.w.str(2, set);
            if let Some(id) = id {
                self.w.be32(4, id);
            }
            let list = self.w.begin_nest(3);
            self.open = Some(OpenList {
                ty,
                set: set.to_string(),
                id,
                msg,
                list,
                items: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        items(&mut self.w, &mut open.items);
    }

    fn close_list(&mut self) {
        if let Some(o) = self.open.take() {
            self.w.end_nest(o.list);
            self.w.end_msg(o.msg);
        }
    }
}

impl Out<'_> {
    pub(super) fn add_table(&mut self, comment: Option<&str>) -> Result<(), EncodeError> {
        let mut udata = Vec::new();
        if let Some(c) = comment {
            udata_comment(&mut udata, 0, c)?; // NFTNL_UDATA_TABLE_COMMENT
        }
        self.message(msg::NEWTABLE, NLM_F_CREATE, 0, |w| {
            w.be32(2, 0);
            if !udata.is_empty() {
                w.bytes(6, &udata);
            }
        });
        Ok(())
    }

    /// `add table` then `delete table`: deletes it whether or not it exists.
    pub(super) fn delete_table(&mut self) {
        self.message(msg::NEWTABLE, NLM_F_CREATE, 0, |w| w.be32(2, 0));
        self.message(msg::DELTABLE, 0, 1, |_| {});
    }
}

struct Encoder<'a> {
    out: Out<'a>,
    /// Sets this batch creates, numbered from 1 like nft's set ids.
    new_sets: NewSets<'a>,
}

impl<'a> Encoder<'a> {
    fn change(&mut self, change: &'a Change) -> Result<(), EncodeError> {
        let out = &mut self.out;
        match change {
            Change::AddTable(comment) => out.add_table(comment.as_deref())?,
            Change::DeleteTable => out.delete_table(),
            Change::AddSet(set) => self.add_set(set)?,
            Change::AddMap(map) => self.add_map(map)?,
            Change::AddChain(name) => {
                out.message(msg::NEWCHAIN, NLM_F_CREATE, 0, |w| w.str(3, name));
            }
            Change::AddBaseChain { name, base } => {
                let prio = base.priority_value().ok_or_else(|| {
                    EncodeError::Unsupported(format!("chain priority {:?}", base.priority))
                })?;
                out.message(msg::NEWCHAIN, NLM_F_CREATE, 0, |w| {
                    w.str(3, name);
                    w.str(7, base.kind);
                    w.nest(4, |w| {
                        w.be32(1, hook_number(base));
                        w.be32(2, prio as u32);
                    });
                });
            }
            Change::FlushChain(name) => {
                out.message(msg::DELRULE, 0, 0, |w| w.str(2, name));
            }
            Change::AddRule { chain, rule } => self.add_rule(chain, rule)?,
            Change::DeleteMapElement { map, key } => {
                self.element(msg::DELSETELEM, map, key_bytes(key), None)?;
            }
            Change::AddMapElement { map, key, entry } => {
                self.element(msg::NEWSETELEM, map, key_bytes(key), Some(entry))?;
            }
            Change::DeleteSetElement { set, key, addr } => {
                self.element(msg::DELSETELEM, set, set_key(*key, addr), None)?;
            }
            Change::AddSetElement { set, key, addr } => {
                self.element(msg::NEWSETELEM, set, set_key(*key, addr), None)?;
            }
            Change::DeleteChain(name) => {
                out.message(msg::DELCHAIN, 0, 0, |w| w.str(3, name));
            }
            Change::DeleteSet(name) => {
                out.message(msg::DELSET, 0, 0, |w| w.str(2, name));
            }
        }
        Ok(())
    }

    fn add_set(&mut self, set: &'a Set) -> Result<(), EncodeError> {
        let id = self.new_sets.len() as u32 + 1;
        self.new_sets.insert(&set.name, id);
        let mut udata = Vec::new();
        let (key_type, key_len) = match set.key {
            SetKey::Addr => {
                // NFTNL_UDATA_SET_KEYBYTEORDER: a u32 in host order.
                udata.extend_from_slice(&[0, 4]);
                udata.extend_from_slice(&BYTEORDER_BIG_ENDIAN.to_ne_bytes());
                (TYPE_IPADDR, 4)
            }
            SetKey::SelfPair => {
                udata.extend_from_slice(&PAIR_SET_UDATA);
                (TYPE_ADDR_ADDR, 8)
            }
        };
        if let Some(c) = &set.comment {
            udata_comment(&mut udata, 7, c)?; // NFTNL_UDATA_SET_COMMENT
        }
        self.out.message(msg::NEWSET, NLM_F_CREATE, 0, |w| {
            w.str(2, &set.name);
            let flags = if set.timeout_secs.is_some() {
                NFT_SET_TIMEOUT | NFT_SET_EVAL
            } else {
                0
            };
            w.be32(3, flags);
            w.be32(4, key_type);
            w.be32(5, key_len);
            w.be32(10, id);
            if let Some(secs) = set.timeout_secs {
                w.be64(11, u64::from(secs) * 1000);
            }
            w.bytes(13, &udata);
        });
        Ok(())
    }

    fn add_map(&mut self, map: &'a Map) -> Result<(), EncodeError> {
        let id = self.new_sets.len() as u32 + 1;
        self.new_sets.insert(&map.name, id);
        let mut udata = MAP_UDATA.to_vec();
        // (key type, key length, data type, data length, flags)
        let (key_type, key_len, data_type, data_len, flags) = match map.key {
            LookupKey::DaddrProtoPort => (TYPE_ADDR_PROTO_PORT, 12, DATA_VERDICT, 0, 0),
            LookupKey::ProtoPort => (TYPE_PROTO_PORT, 8, DATA_VERDICT, 0, 0),
            LookupKey::Random(p) => {
                udata = RANDOM_MAP_UDATA.to_vec();
                udata[RANDOM_MAP_PROTO_AT] = typeof_proto(p);
                (TYPE_INTEGER, 4, TYPE_ADDR_PORT, 8, NFT_SET_INTERVAL)
            }
        };
        if let Some(c) = &map.comment {
            udata_comment(&mut udata, 7, c)?; // NFTNL_UDATA_SET_COMMENT
        }
        self.out.message(msg::NEWSET, NLM_F_CREATE, 0, |w| {
            w.str(2, &map.name);
            w.be32(3, NFT_SET_MAP | flags);
            w.be32(4, key_type);
            w.be32(5, key_len);
            w.be32(6, data_type);
            w.be32(7, data_len);
            w.be32(10, id);
            w.bytes(13, &udata);
        });
        Ok(())
    }

    /// One message per loaded rule: a random choice is a cascade of rules.
    fn add_rule(&mut self, chain: &str, rule: &Rule) -> Result<(), EncodeError> {
        check_rule(rule).map_err(|reason| EncodeError::Rule {
            chain: chain.to_string(),
            reason,
        })?;
        let udata = rule_udata(rule)?;
        let new_sets = &self.new_sets;
        for (line, step) in steps(rule).into_iter().enumerate() {
            self.out
                .message(msg::NEWRULE, NLM_F_CREATE | NLM_F_APPEND, line, |w| {
                    w.str(2, chain);
                    w.nest(4, |w| write_step(w, rule, step, new_sets));
                    if !udata.is_empty() {
                        w.bytes(7, &udata);
                    }
                });
        }
        Ok(())
    }

    /// One element; an interval's (`key.1` says how it ends) is its start and its end.
    fn element(
        &mut self,
        ty: u8,
        set: &str,
        key: (Vec<u8>, End),
        entry: Option<&MapEntry>,
    ) -> Result<(), EncodeError> {
        let (key, end) = key;
        let id = (ty == msg::NEWSETELEM)
            .then(|| self.new_sets.get(set).copied())
            .flatten();
        let mut udata = Vec::new();
        if let Some(c) = entry.and_then(|e| e.comment.as_deref()) {
            udata_comment(&mut udata, 0, c)?; // NFTNL_UDATA_SET_ELEM_COMMENT
        }
        if let End::Open = end {
            udata.extend_from_slice(&ELEM_UDATA_OPEN);
        }
        self.out.elements(ty, set, id, |w, items| {
            *items += 1;
            w.nest(*items, |w| {
                w.nest(1, |w| w.bytes(1, &key));
                if let Some(e) = entry {
                    w.nest(2, |w| match &e.verdict {
                        MapVerdict::Goto(c) => Verdict::goto(c).write(w),
                        MapVerdict::Drop => Verdict::drop().write(w),
                        MapVerdict::Endpoint(to) => {
                            let mut data = to.ip().octets().to_vec();
                            data.extend_from_slice(&to.port().to_be_bytes());
                            data.extend_from_slice(&[0, 0]);
                            w.bytes(1, &data);
                        }
                    });
                }
                if !udata.is_empty() {
                    w.bytes(6, &udata);
                }
            });
            if let End::At(end) = end {
                *items += 1;
                w.nest(*items, |w| {
                    w.be32(3, ELEM_INTERVAL_END);
                    w.nest(1, |w| w.bytes(1, &end));
                });
            }
        });
        Ok(())
    }
}

/// One loaded rule of a random choice's cascade: "1 in `modulus` goto `chain`"; `None`
/// for a rule that loads as itself.
type Step<'a> = Option<(Option<u32>, &'a str)>;

fn steps(rule: &Rule) -> Vec<Step<'_>> {
    match &rule.action {
        Action::NumgenGoto(chains) => {
            let n = chains.len();
            (0..n)
                .map(|i| Some(((i + 1 < n).then_some((n - i) as u32), chains[i].as_str())))
                .collect()
        }
        _ => vec![None],
    }
}

/// A rule's userdata: its comment (a cascade loads without it, as `Update::to_nft`
/// writes it).
fn rule_udata(rule: &Rule) -> Result<Vec<u8>, EncodeError> {
    let mut udata = Vec::new();
    let cascade = matches!(rule.action, Action::NumgenGoto(_));
    if let Some(c) = rule.comment.filter(|_| !cascade) {
        udata_comment(&mut udata, 0, c)?; // NFTNL_UDATA_RULE_COMMENT
    }
    Ok(udata)
}

fn write_step(w: &mut Writer, rule: &Rule, step: Step<'_>, new_sets: &NewSets<'_>) {
    let mut r = RuleExprs { w, new_sets };
    r.matches(&rule.matches);
    match step {
        Some((modulus, to)) => r.numgen_step(modulus, to),
        None => r.action(&rule.matches, &rule.action),
    }
}

/// The rules the kernel holds for `rule` once loaded, in the canonical form the table
/// reader gives them (for `Ruleset::repair`). A rule nft would refuse has none, so its
/// chain never matches what the kernel holds and loading it reports the error.
pub fn loaded_forms(rule: &Rule) -> Vec<LoadedRule> {
    let (Ok(()), Ok(udata)) = (check_rule(rule), rule_udata(rule)) else {
        return Vec::new();
    };
    let none = NewSets::new();
    steps(rule)
        .into_iter()
        .filter_map(|step| {
            let mut w = Writer::default();
            write_step(&mut w, rule, step, &none);
            canonical_rule(&w.buf, (!udata.is_empty()).then_some(&udata[..])).ok()
        })
        .collect()
}

/// `NF_INET_*` of a base chain's hook.
fn hook_number(base: &BaseChain) -> u32 {
    match base.hook {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

/// A set element's key: an address, or an address paired with itself.
fn set_key(key: SetKey, addr: &std::net::Ipv4Addr) -> (Vec<u8>, End) {
    let mut out = addr.octets().to_vec();
    if key == SetKey::SelfPair {
        out.extend_from_slice(&addr.octets());
    }
    (out, End::None)
}

/// A map element's key, and for a range how it ends: one past its last number, or with
/// the key space.
fn key_bytes(key: &MapKey) -> (Vec<u8>, End) {
    match key {
        MapKey::Range(lo, hi) => {
            let end = hi
                .checked_add(1)
                .map_or(End::Open, |e| End::At(e.to_be_bytes()));
            (lo.to_be_bytes().to_vec(), end)
        }
        _ => (map_key(key), End::None),
    }
}

/// A concatenated key as nft lays it out: every field padded to 4 bytes.
fn map_key(key: &MapKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    let (proto, port) = match key {
        MapKey::Range(lo, _) => return lo.to_be_bytes().to_vec(),
        MapKey::Addr(ip, proto, port) => {
            out.extend_from_slice(&ip.octets());
            (proto, port)
        }
        MapKey::ProtoPort(proto, port) => (proto, port),
    };
    out.extend_from_slice(&[proto_number(*proto), 0, 0, 0]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}
