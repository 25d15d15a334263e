//! A NetworkPolicy table update (`kinet_policy::Update`: a whole load, changes in place, a
//! removal) as one nfnetlink batch (pure), laid out
//! as nft 1.0.6 sends the same `Update::to_nft()` text, so `nft list` prints what it would
//! after `nft -f`. Messages are numbered in the order of the text's lines, which name a
//! refused message in errors; a line is only written out for such an error.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use kinet_policy::{
    Action, AddrField, Chain, Change, Element, Hook, Match, Proto, Rule, Ruleset, Set, SetKind,
    Update,
};

use super::encode::{
    Batch, Out, BYTEORDER_BIG_ENDIAN, DATA_VERDICT, NFT_SET_MAP, TYPE_ADDR_PROTO_PORT, TYPE_IPADDR,
    TYPE_PROTO_PORT,
};
use super::expr::{
    proto_number, NewSets, RuleExprs, Verdict, IP_DADDR, IP_SADDR, META_L4PROTO, NFT_JUMP,
    NFT_RETURN, NF_ACCEPT, NF_DROP, PAYLOAD_NETWORK, PAYLOAD_TRANSPORT, REG32_00, REG_1,
    REG_VERDICT, TH_DPORT,
};
use super::wire::{msg, udata_comment, Writer, NLM_F_APPEND, NLM_F_CREATE};
use super::EncodeError;

pub(super) const NFT_SET_INTERVAL: u32 = 0x04;
pub(super) const NFT_SET_CONCAT: u32 = 0x80;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x01;
const NFT_MSG_NEWOBJ: u8 = 18;
const NFT_MSG_DELOBJ: u8 = 20;
pub(super) const NFT_OBJECT_COUNTER: u32 = 1;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
pub(super) const CT_ESTABLISHED_RELATED: u32 = 0x2 | 0x4;
pub(super) const NFT_BYTEORDER_HTON: u32 = 1;

/// nftnl userdata of a concatenated set (`inet_proto . inet_service` last field) and of a
/// plain `ipv4_addr : verdict` map, as nft 1.0.6 writes them.
const CONCAT_UDATA: [u8; 16] = [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0];
const ADDR_MAP_UDATA: [u8; 18] = [0, 4, 2, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0];

/// Where one `nft` line of an update comes from, written out on demand.
#[derive(Debug, Clone, Copy)]
enum Line<'a> {
    Change(&'a Change),
    DeleteTable,
    AddTable,
    Set(&'a Set),
    Map(&'a str),
    Counter(&'a str),
    Chain(&'a Chain),
    Rule(&'a str, &'a Rule),
    Element(&'a str, &'a Element),
    MapElement(&'a str, Ipv4Addr, &'a str),
}

/// The `nft` lines of an encoded update (message `i` of the batch starts at line
/// `batch.origins[i].change`).
#[derive(Debug)]
pub struct Lines<'a> {
    table: &'a str,
    lines: Vec<Line<'a>>,
}

impl Lines<'_> {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i` as `nft -f` reads it.
    pub fn text(&self, i: usize) -> Option<String> {
        let t = self.table;
        Some(match *self.lines.get(i)? {
            Line::Change(c) => c.to_nft(t),
            Line::DeleteTable => format!("delete table ip {t}"),
            Line::AddTable => format!("add table ip {t}"),
            Line::Set(s) => s.declaration(t),
            Line::Map(m) => format!("add map ip {t} {m} {{ type ipv4_addr : verdict ; }}"),
            Line::Counter(c) => format!("add counter ip {t} {c}"),
            Line::Chain(c) => match c.hook {
                None => format!("add chain ip {t} {}", c.name),
                Some(h) => format!(
                    "add chain ip {t} {} {{ type filter hook {} priority filter ; }}",
                    c.name,
                    hook_name(h).0
                ),
            },
            Line::Rule(chain, r) => format!("add rule ip {t} {chain} {}", r.to_nft()),
            Line::Element(set, e) => format!("add element ip {t} {set} {{ {e} }}"),
            Line::MapElement(map, addr, chain) => {
                format!("add element ip {t} {map} {{ {addr} : jump {chain} }}")
            }
        })
    }
}

/// The hook's name and number.
fn hook_name(h: Hook) -> (&'static str, u32) {
    match h {
        Hook::Input => ("input", 1),
        Hook::Forward => ("forward", 2),
    }
}

/// Encodes `update` as one batch numbered from `first_seq`, with each message's `nft` line
/// for error reports.
pub fn encode_policy(update: &Update, first_seq: u32) -> Result<(Batch, Lines<'_>), EncodeError> {
    let table = match update {
        Update::Load(rs) => rs.table.as_str(),
        Update::Changes { table, .. } | Update::Delete(table) => table.as_str(),
    };
    let mut enc = PolicyEncoder {
        out: Out::begin(table, first_seq),
        lines: Vec::new(),
        new_sets: HashMap::new(),
    };
    match update {
        Update::Load(rs) => enc.load(rs)?,
        Update::Changes { changes, .. } => {
            for c in changes {
                enc.change(c)?;
            }
        }
        Update::Delete(_) => {
            enc.line(Line::DeleteTable);
            enc.out.delete_table();
        }
    }
    let lines = Lines {
        table,
        lines: enc.lines,
    };
    Ok((enc.out.finish(), lines))
}

struct PolicyEncoder<'a> {
    out: Out<'a>,
    lines: Vec<Line<'a>>,
    new_sets: NewSets<'a>,
}

impl<'a> PolicyEncoder<'a> {
    /// The `nft` line the next messages come from.
    fn line(&mut self, line: Line<'a>) {
        self.out.change = self.lines.len();
        self.lines.push(line);
    }

    fn load(&mut self, rs: &'a Ruleset) -> Result<(), EncodeError> {
        self.line(Line::DeleteTable);
        self.out.delete_table();
        self.line(Line::AddTable);
        self.out.add_table(Some("rules for kinet network policy"))?;
        for s in &rs.sets {
            self.line(Line::Set(s));
            self.add_set(s)?;
        }
        for m in rs.maps.keys() {
            self.line(Line::Map(m));
            self.add_map(m);
        }
        for c in &rs.counters {
            self.line(Line::Counter(c));
            self.add_counter(c);
        }
        for c in &rs.chains {
            self.line(Line::Chain(c));
            self.add_chain(c);
        }
        for c in &rs.chains {
            for r in &c.rules {
                self.line(Line::Rule(&c.name, r));
                self.add_rule(&c.name, r)?;
            }
        }
        for s in &rs.sets {
            for e in &s.elements {
                self.line(Line::Element(&s.name, e));
                self.set_element(&s.name, e, true);
            }
        }
        for (m, elements) in &rs.maps {
            for (ip, chain) in elements {
                self.line(Line::MapElement(m, *ip, chain));
                self.map_element(m, *ip, Some(chain));
            }
        }
        Ok(())
    }

    fn change(&mut self, c: &'a Change) -> Result<(), EncodeError> {
        self.line(Line::Change(c));
        match c {
            Change::AddSet(s) => self.add_set(s)?,
            Change::AddCounter(name) => self.add_counter(name),
            Change::AddChain(name) => self.add_regular_chain(name),
            Change::DeleteFromSet { set, element } => self.set_element(set, element, false),
            Change::AddToSet { set, element } => self.set_element(set, element, true),
            Change::FlushChain(name) => {
                self.out.message(msg::DELRULE, 0, 0, |w| w.str(2, name));
            }
            Change::AddRule { chain, rule } => self.add_rule(chain, rule)?,
            Change::DeleteFromMap { map, addr } => self.map_element(map, *addr, None),
            Change::AddToMap { map, addr, chain } => self.map_element(map, *addr, Some(chain)),
            Change::DeleteChain(name) => {
                self.out.message(msg::DELCHAIN, 0, 0, |w| w.str(3, name));
            }
            Change::DeleteSet(name) => {
                self.out.message(msg::DELSET, 0, 0, |w| w.str(2, name));
            }
            Change::DeleteCounter(name) => {
                self.out.message(NFT_MSG_DELOBJ, 0, 0, |w| {
                    w.str(2, name);
                    w.be32(3, NFT_OBJECT_COUNTER);
                });
            }
        }
        Ok(())
    }

    fn add_counter(&mut self, name: &str) {
        self.out.message(NFT_MSG_NEWOBJ, NLM_F_CREATE, 0, |w| {
            w.str(2, name);
            w.be32(3, NFT_OBJECT_COUNTER);
            w.nest(4, |w| {
                w.be64(1, 0); // bytes
                w.be64(2, 0); // packets
            });
        });
    }

    fn add_regular_chain(&mut self, name: &str) {
        self.out
            .message(msg::NEWCHAIN, NLM_F_CREATE, 0, |w| w.str(3, name));
    }

    fn add_set(&mut self, s: &'a Set) -> Result<(), EncodeError> {
        let id = self.new_sets.len() as u32 + 1;
        self.new_sets.insert(&s.name, id);
        let (flags, key_type, key_len) = match s.kind {
            SetKind::Addr => (NFT_SET_INTERVAL, TYPE_IPADDR, 4),
            SetKind::ProtoPort => (NFT_SET_INTERVAL | NFT_SET_CONCAT, TYPE_PROTO_PORT, 8),
            SetKind::AddrProtoPort => (0, TYPE_ADDR_PROTO_PORT, 12),
        };
        let mut udata = match s.kind {
            SetKind::Addr => {
                let mut u = vec![0, 4]; // NFTNL_UDATA_SET_KEYBYTEORDER
                u.extend_from_slice(&BYTEORDER_BIG_ENDIAN.to_ne_bytes());
                u
            }
            SetKind::ProtoPort | SetKind::AddrProtoPort => CONCAT_UDATA.to_vec(),
        };
        udata_comment(&mut udata, 7, &s.comment)?; // NFTNL_UDATA_SET_COMMENT
        self.out.message(msg::NEWSET, NLM_F_CREATE, 0, |w| {
            w.str(2, &s.name);
            w.be32(3, flags);
            w.be32(4, key_type);
            w.be32(5, key_len);
            w.be32(10, id);
            if s.kind == SetKind::ProtoPort {
                // NFTA_SET_DESC_CONCAT: the field lengths, protocol then port.
                w.nest(9, |w| {
                    w.nest(2, |w| {
                        w.nest(1, |w| w.be32(1, 1));
                        w.nest(1, |w| w.be32(1, 2));
                    })
                });
            }
            w.bytes(13, &udata);
        });
        Ok(())
    }

    fn add_map(&mut self, name: &'a str) {
        let id = self.new_sets.len() as u32 + 1;
        self.new_sets.insert(name, id);
        self.out.message(msg::NEWSET, NLM_F_CREATE, 0, |w| {
            w.str(2, name);
            w.be32(3, NFT_SET_MAP);
            w.be32(4, TYPE_IPADDR);
            w.be32(5, 4);
            w.be32(6, DATA_VERDICT);
            w.be32(7, 0);
            w.be32(10, id);
            w.bytes(13, &ADDR_MAP_UDATA);
        });
    }

    fn add_chain(&mut self, c: &Chain) {
        let Some(hook) = c.hook else {
            return self.add_regular_chain(&c.name);
        };
        let number = hook_name(hook).1;
        self.out.message(msg::NEWCHAIN, NLM_F_CREATE, 0, |w| {
            w.str(3, &c.name);
            w.str(7, "filter");
            w.nest(4, |w| {
                w.be32(1, number);
                w.be32(2, 0); // priority filter
            });
        });
    }

    fn add_rule(&mut self, chain: &str, r: &Rule) -> Result<(), EncodeError> {
        let udata = rule_udata(r)?;
        let new_sets = &self.new_sets;
        self.out
            .message(msg::NEWRULE, NLM_F_CREATE | NLM_F_APPEND, 0, |w| {
                w.str(2, chain);
                w.nest(4, |w| write_rule(w, r, new_sets));
                if let Some(u) = &udata {
                    w.bytes(7, u);
                }
            });
        Ok(())
    }

    /// An interval set holds a range as its start and, unless it runs to the last address,
    /// an interval-end element just past it; a concatenated interval as key and key end.
    fn set_element(&mut self, set: &str, e: &Element, add: bool) {
        let mut elems: Vec<(Vec<u8>, Option<Vec<u8>>, u32)> = Vec::new();
        match e {
            Element::Range(a, b) => {
                elems.push((a.octets().to_vec(), None, 0));
                if let Some(end) = u32::from(*b).checked_add(1) {
                    let end = Ipv4Addr::from(end).octets().to_vec();
                    elems.push((end, None, NFT_SET_ELEM_INTERVAL_END));
                }
            }
            Element::ProtoPorts(p, a, b) => {
                elems.push((proto_port(*p, *a), Some(proto_port(*p, *b)), 0));
            }
            Element::AddrProtoPort(ip, p, n) => {
                let mut key = ip.octets().to_vec();
                key.extend(proto_port(*p, *n));
                elems.push((key, None, 0));
            }
        }
        let id = self.created(set, add);
        self.out.elements(element_msg(add), set, id, |w, items| {
            for (key, key_end, flags) in &elems {
                *items += 1;
                w.nest(*items, |w| {
                    if *flags != 0 {
                        w.be32(3, *flags);
                    }
                    w.nest(1, |w| w.bytes(1, key));
                    if let Some(end) = key_end {
                        w.nest(10, |w| w.bytes(1, end));
                    }
                });
            }
        });
    }

    /// `addr : jump chain` added, or (without a chain) `addr` deleted.
    fn map_element(&mut self, map: &str, addr: Ipv4Addr, chain: Option<&str>) {
        let id = self.created(map, chain.is_some());
        self.out
            .elements(element_msg(chain.is_some()), map, id, |w, items| {
                *items += 1;
                w.nest(*items, |w| {
                    w.nest(1, |w| w.bytes(1, &addr.octets()));
                    if let Some(c) = chain {
                        w.nest(2, |w| {
                            Verdict {
                                code: NFT_JUMP,
                                chain: Some(c),
                            }
                            .write(w)
                        });
                    }
                });
            });
    }

    /// The batch id of a set this batch created, for additions to it.
    fn created(&self, set: &str, add: bool) -> Option<u32> {
        add.then(|| self.new_sets.get(set).copied()).flatten()
    }
}

/// A rule's userdata: its comment, if any.
fn rule_udata(r: &Rule) -> Result<Option<Vec<u8>>, EncodeError> {
    let Some(c) = &r.comment else {
        return Ok(None);
    };
    let mut udata = Vec::new();
    udata_comment(&mut udata, 0, c)?; // NFTNL_UDATA_RULE_COMMENT
    Ok(Some(udata))
}

/// A rule's `NFTA_RULE_EXPRESSIONS` and userdata, as a whole load sends them.
#[cfg(test)]
pub(super) fn rule_forms(r: &Rule) -> Result<(Vec<u8>, Option<Vec<u8>>), EncodeError> {
    let mut w = Writer::default();
    write_rule(&mut w, r, &NewSets::new());
    Ok((w.buf, rule_udata(r)?))
}

fn element_msg(add: bool) -> u8 {
    if add {
        msg::NEWSETELEM
    } else {
        msg::DELSETELEM
    }
}

/// `inet_proto . inet_service` as nft lays a concatenation out: each field in 4 bytes.
fn proto_port(p: Proto, port: u16) -> Vec<u8> {
    let mut out = vec![proto_number(p), 0, 0, 0];
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fn addr_offset(f: AddrField) -> u32 {
    match f {
        AddrField::Saddr => IP_SADDR,
        AddrField::Daddr => IP_DADDR,
    }
}

/// The expressions of one policy rule.
fn write_rule(w: &mut Writer, r: &Rule, new_sets: &NewSets<'_>) {
    let mut x = RuleExprs { w, new_sets };
    for m in &r.matches {
        match m {
            Match::CtEstablishedRelated => x.ct_state_in(CT_ESTABLISHED_RELATED),
            Match::AddrInSet(f, set) => {
                x.payload(PAYLOAD_NETWORK, addr_offset(*f), 4, REG_1);
                x.lookup(set, REG_1, None);
            }
            Match::ProtoPortInSet(set) => {
                x.meta_load(META_L4PROTO, REG_1);
                // nft converts the protocol field for an interval key (a no-op for one
                // byte, kept so the kernel holds what nft would load).
                x.expr("byteorder", |w| {
                    w.be32(1, REG_1);
                    w.be32(2, REG_1);
                    w.be32(3, NFT_BYTEORDER_HTON);
                    w.be32(4, 1);
                    w.be32(5, 2);
                });
                x.payload(PAYLOAD_TRANSPORT, TH_DPORT, 2, REG32_00 + 1);
                x.lookup(set, REG_1, None);
            }
            Match::DaddrProtoPortInSet(set) => {
                x.payload(PAYLOAD_NETWORK, IP_DADDR, 4, REG_1);
                x.meta_load(META_L4PROTO, REG32_00 + 1);
                x.payload(PAYLOAD_TRANSPORT, TH_DPORT, 2, REG32_00 + 2);
                x.lookup(set, REG_1, None);
            }
        }
    }
    let code = |code| Verdict { code, chain: None };
    match &r.action {
        Action::Accept => x.verdict(code(NF_ACCEPT)),
        Action::Drop => x.verdict(code(NF_DROP)),
        Action::Return => x.verdict(code(NFT_RETURN)),
        Action::Count(name) => x.expr("objref", |w| {
            w.be32(1, NFT_OBJECT_COUNTER);
            w.str(2, name);
        }),
        Action::Vmap(f, map) => {
            x.payload(PAYLOAD_NETWORK, addr_offset(*f), 4, REG_1);
            x.lookup(map, REG_1, Some(REG_VERDICT));
        }
    }
}
