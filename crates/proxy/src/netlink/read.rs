//! Reading a table back (pure): the messages of nf_tables dumps (chains, rules, sets and
//! set elements) as a [`Loaded`] table, the model `Ruleset::repair` compares with.
//!
//! Rules stay in loaded form: each rule's expressions, canonicalised so that what the
//! kernel dumps and what [`super::encode::loaded_forms`] encodes compare equal. The kernel
//! echoes a few attributes nft never sends, all holding the default: zero flags, timeouts
//! and offsets, and a NAT range's upper register equal to its lower one. Those are dropped
//! on both sides, and attributes are ordered by type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use kinet_proxy_rules::{
    Hook, Loaded, LoadedBase, LoadedChain, LookupKey, Map, MapEntry, MapKey, MapVerdict, Proto,
    Set, SetKey,
};

use super::encode::{
    typeof_proto, NFT_SET_MAP, NFT_SET_TIMEOUT, RANDOM_MAP_PROTO_AT, TYPE_ADDR_ADDR,
    TYPE_ADDR_PORT, TYPE_ADDR_PROTO_PORT, TYPE_PROTO_PORT,
};
use super::expr::{NFT_CONTINUE_GOTO, NF_DROP};
use super::NetlinkError;

pub(crate) const NFT_SET_ANONYMOUS: u32 = 0x1;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A rule in loaded form: canonical expressions, then its userdata (the comment).
pub type LoadedRule = Vec<u8>;

/// The attributes of one level, `(type, payload)`, flags stripped.
pub(crate) fn attrs(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, NetlinkError> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return Err(malformed(format!(
                "attribute length {len} of {}",
                buf.len()
            )));
        }
        out.push((ty, &buf[4..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    Ok(out)
}

pub(crate) fn malformed(what: impl Into<String>) -> NetlinkError {
    NetlinkError::Malformed(what.into())
}

pub(crate) fn get<'a>(a: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    a.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
}

pub(crate) fn string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

pub(crate) fn be32(v: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_be_bytes(v?.get(..4)?.try_into().ok()?))
}

fn be64(v: Option<&[u8]>) -> Option<u64> {
    Some(u64::from_be_bytes(v?.get(..8)?.try_into().ok()?))
}

/// A userdata TLV stream's entry of type `ty`, as text.
pub(crate) fn udata_text(udata: Option<&[u8]>, ty: u8) -> Option<String> {
    let mut u = udata?;
    while u.len() >= 2 {
        let (t, len) = (u[0], u[1] as usize);
        let value = u.get(2..2 + len)?;
        if t == ty {
            return Some(string(value));
        }
        u = &u[2 + len..];
    }
    None
}

/// Which attributes of an expression's data are nested `NFTA_DATA_*` values.
fn data_attrs(expr: &str) -> &'static [u16] {
    match expr {
        "cmp" => &[3],
        "bitwise" => &[4, 5],
        "immediate" => &[2],
        _ => &[],
    }
}

/// Appends one attribute: type, length, value.
fn put(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&(value.len() as u32).to_ne_bytes());
    out.extend_from_slice(value);
}

/// Attributes sorted by type, zero-valued leaves dropped; `nests[0]` lists the types that
/// are nests at this level, to canonicalise the same way with `nests[1..]`.
fn canonical_attrs(mut a: Vec<(u16, &[u8])>, nests: &[&[u16]]) -> Result<Vec<u8>, NetlinkError> {
    a.sort_by_key(|(t, _)| *t);
    let mut out = Vec::new();
    for (ty, v) in a {
        if nests.first().is_some_and(|n| n.contains(&ty)) {
            put(&mut out, ty, &canonical_attrs(attrs(v)?, &nests[1..])?);
        } else if v.iter().any(|b| *b != 0) {
            put(&mut out, ty, v);
        }
    }
    Ok(out)
}

/// In `NFTA_DATA_*`, the verdict (2) is a nest of leaves; a value (1) is a leaf.
const DATA_NESTS: &[u16] = &[2];

/// The `NFTA_RULE_EXPRESSIONS` payload and userdata of a rule in canonical form.
pub(crate) fn canonical_rule(
    exprs: &[u8],
    udata: Option<&[u8]>,
) -> Result<LoadedRule, NetlinkError> {
    let mut out = Vec::new();
    for (_, elem) in attrs(exprs)? {
        let e = attrs(elem)?;
        let name = string(get(&e, 1).ok_or_else(|| malformed("expression without a name"))?);
        let mut data = attrs(get(&e, 2).unwrap_or_default())?;
        let nat_flags;
        if name == "nat" {
            // NFTA_NAT_REG_{ADDR,PROTO}_MAX: the kernel reports the lower register when
            // no upper one was given.
            for (min, max) in [(3, 4), (5, 6)] {
                if get(&data, max).is_some() && get(&data, max) == get(&data, min) {
                    data.retain(|(t, _)| *t != max);
                }
            }
            // NFTA_NAT_FLAGS: the kernel adds NF_NAT_RANGE_MAP_IPS when an address is given,
            // NF_NAT_RANGE_PROTO_SPECIFIED when a port is.
            if get(&data, 3).is_some() {
                let port = if get(&data, 5).is_some() { 2 } else { 0 };
                nat_flags = (be32(get(&data, 7)).unwrap_or(0) | 1 | port).to_be_bytes();
                data.retain(|(t, _)| *t != 7);
                data.push((7, &nat_flags));
            }
        }
        let nests = [data_attrs(&name), DATA_NESTS];
        put(&mut out, 1, name.as_bytes());
        put(&mut out, 2, &canonical_attrs(data, &nests)?);
    }
    put(&mut out, 7, udata.unwrap_or_default());
    Ok(out)
}

/// The dump replies of one table, each the attributes after the nfgenmsg header.
#[derive(Debug, Default)]
pub struct Dumps {
    pub chains: Vec<Vec<u8>>,
    pub rules: Vec<Vec<u8>>,
    pub sets: Vec<Vec<u8>>,
    /// Per set or map whose elements were read: its `NEWSETELEM` replies.
    pub elements: Vec<(String, Vec<Vec<u8>>)>,
}

/// A set or map as its `NEWSET` reply describes it.
enum SetInfo {
    Set(Set),
    Map(Map),
    /// Anonymous sets belong to the rules that made them.
    Anonymous,
}

/// Decodes one `NEWSET` reply.
fn set_info(msg: &[u8]) -> Result<SetInfo, NetlinkError> {
    let a = attrs(msg)?;
    let name = string(get(&a, 2).ok_or_else(|| malformed("set without a name"))?);
    let flags = be32(get(&a, 3)).unwrap_or(0);
    if flags & NFT_SET_ANONYMOUS != 0 {
        return Ok(SetInfo::Anonymous);
    }
    let udata = get(&a, 13);
    if flags & NFT_SET_MAP != 0 {
        let key = match (be32(get(&a, 4)), be32(get(&a, 6))) {
            (Some(TYPE_ADDR_PROTO_PORT), _) => LookupKey::DaddrProtoPort,
            (Some(TYPE_PROTO_PORT), _) => LookupKey::ProtoPort,
            // An endpoint map: the protocol is only in the `typeof` userdata.
            (_, Some(TYPE_ADDR_PORT)) => {
                let named = udata.and_then(|u| u.get(RANDOM_MAP_PROTO_AT)).copied();
                [Proto::Tcp, Proto::Udp, Proto::Sctp]
                    .into_iter()
                    .find(|p| Some(typeof_proto(*p)) == named)
                    .map(LookupKey::Random)
                    .ok_or_else(|| malformed(format!("map {name}: typeof {named:?}")))?
            }
            other => return Err(malformed(format!("map {name}: key and data {other:?}"))),
        };
        return Ok(SetInfo::Map(Map {
            name,
            key,
            comment: udata_text(udata, 7),
            elements: BTreeMap::new(),
        }));
    }
    let timeout_secs = (flags & NFT_SET_TIMEOUT != 0)
        .then(|| be64(get(&a, 11)).map_or(0, |ms| (ms / 1000) as u32));
    let key = if be32(get(&a, 4)) == Some(TYPE_ADDR_ADDR) {
        SetKey::SelfPair
    } else {
        SetKey::Addr
    };
    Ok(SetInfo::Set(Set {
        name,
        key,
        comment: udata_text(udata, 7),
        timeout_secs,
        elements: BTreeSet::new(),
    }))
}

/// The name of the set or map a `NEWSET` reply describes, unless it is anonymous (a
/// rule's own) or dynamic (its elements belong to the packet path).
pub(crate) fn static_set(msg: &[u8]) -> Result<Option<String>, NetlinkError> {
    let a = attrs(msg)?;
    let name = string(get(&a, 2).ok_or_else(|| malformed("set without a name"))?);
    let flags = be32(get(&a, 3)).unwrap_or(0);
    Ok((flags & (NFT_SET_ANONYMOUS | NFT_SET_TIMEOUT) == 0).then_some(name))
}

/// One element of a `NEWSETELEM` reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Elem<'a> {
    pub key: &'a [u8],
    /// A concatenated interval's last key (`NFTA_SET_ELEM_KEY_END`).
    pub key_end: Option<&'a [u8]>,
    pub data: Option<&'a [u8]>,
    pub udata: Option<&'a [u8]>,
    /// Whether it ends an interval (its key is one past the interval's last number).
    pub end: bool,
}

pub(crate) fn elements(msg: &[u8]) -> Result<Vec<Elem<'_>>, NetlinkError> {
    let a = attrs(msg)?;
    let mut out = Vec::new();
    for (_, e) in attrs(get(&a, 3).unwrap_or_default())? {
        let e = attrs(e)?;
        let key = get(&attrs(get(&e, 1).unwrap_or_default())?, 1)
            .ok_or_else(|| malformed("set element without a key"))?;
        let key_end = match get(&e, 10) {
            Some(k) => get(&attrs(k)?, 1),
            None => None,
        };
        out.push(Elem {
            key,
            key_end,
            data: get(&e, 2),
            udata: get(&e, 6),
            end: be32(get(&e, 3)).unwrap_or(0) & 1 != 0, // NFT_SET_ELEM_INTERVAL_END
        });
    }
    Ok(out)
}

/// The address a set element holds (a self-pair's two halves must agree).
fn set_element(key: SetKey, b: &[u8]) -> Option<Ipv4Addr> {
    let ip = Ipv4Addr::from(<[u8; 4]>::try_from(b.get(..4)?).ok()?);
    let whole = match key {
        SetKey::Addr => b.len() == 4,
        SetKey::SelfPair => b.len() == 8 && b[..4] == b[4..],
    };
    whole.then_some(ip)
}

/// The intervals of a set keyed by 4-byte numbers, `(first, last, value)`, from their
/// starts (`value` reads what a start holds) and ends (one past the last number, flagged);
/// the kernel may list them in any order.
pub(crate) fn intervals<'a, T>(
    mut elems: Vec<Elem<'a>>,
    value: impl Fn(&Elem<'a>) -> Option<T>,
) -> Option<Vec<(u32, u32, T)>> {
    let n = |k: &[u8]| Some(u32::from_be_bytes(k.try_into().ok()?));
    elems.sort_by_key(|e| (n(e.key), !e.end));
    let mut out = Vec::new();
    let mut open: Option<(u32, T)> = None;
    for e in elems {
        let at = n(e.key)?;
        if let Some((lo, v)) = open.take() {
            // An interval ends where the next one starts, or at its end element.
            out.push((lo, at.checked_sub(1)?, v));
        }
        if !e.end {
            open = Some((at, value(&e)?));
        }
    }
    // The last interval may run to the end of the key space, with no end element.
    if let Some((lo, v)) = open {
        out.push((lo, u32::MAX, v));
    }
    Some(out)
}

/// An endpoint map's elements: intervals of numbers, each to an `address . port`.
fn ranges(elems: Vec<Elem<'_>>) -> Option<BTreeMap<MapKey, MapEntry>> {
    let endpoint = |e: &Elem<'_>| {
        let d = attrs(e.data?).ok()?;
        let v = get(&d, 1)?;
        let ip = Ipv4Addr::from(<[u8; 4]>::try_from(v.get(..4)?).ok()?);
        let port = u16::from_be_bytes(v.get(4..6)?.try_into().ok()?);
        Some(MapVerdict::Endpoint(std::net::SocketAddrV4::new(ip, port)))
    };
    let entries = intervals(elems, endpoint)?
        .into_iter()
        .map(|(lo, hi, verdict)| {
            let entry = MapEntry {
                verdict,
                comment: None,
            };
            (MapKey::Range(lo, hi), entry)
        });
    Some(entries.collect())
}

pub(crate) fn proto(n: u8) -> Option<Proto> {
    match n {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        132 => Some(Proto::Sctp),
        _ => None,
    }
}

fn map_key(key: LookupKey, b: &[u8]) -> Option<MapKey> {
    let port = |at: usize| Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?));
    match (key, b.len()) {
        (LookupKey::DaddrProtoPort, 12) => Some(MapKey::Addr(
            Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            proto(b[4])?,
            port(8)?,
        )),
        (LookupKey::ProtoPort, 8) => Some(MapKey::ProtoPort(proto(b[0])?, port(4)?)),
        _ => None,
    }
}

fn verdict(data: Option<&[u8]>) -> Result<MapVerdict, NetlinkError> {
    let d = attrs(data.unwrap_or_default())?;
    let v = attrs(get(&d, 2).unwrap_or_default())?;
    match be32(get(&v, 1)).map(|c| c as i32) {
        Some(NFT_CONTINUE_GOTO) => Ok(MapVerdict::Goto(string(
            get(&v, 2).ok_or_else(|| malformed("goto without a chain"))?,
        ))),
        Some(NF_DROP) => Ok(MapVerdict::Drop),
        other => Err(malformed(format!("map verdict {other:?}"))),
    }
}

fn hook(n: u32) -> Option<Hook> {
    Some(match n {
        0 => Hook::Prerouting,
        1 => Hook::Input,
        2 => Hook::Forward,
        3 => Hook::Output,
        4 => Hook::Postrouting,
        _ => return None,
    })
}

/// The table the dumps describe. Anything kinet never loads (an element of unknown
/// shape, a verdict other than goto or drop) is an error: the caller replaces the table.
pub fn loaded_table(d: &Dumps) -> Result<Loaded<LoadedRule>, NetlinkError> {
    let mut chains = Vec::new();
    for m in &d.chains {
        let a = attrs(m)?;
        let name = string(get(&a, 3).ok_or_else(|| malformed("chain without a name"))?);
        let base = match get(&a, 4) {
            Some(h) => {
                let h = attrs(h)?;
                let hook = be32(get(&h, 1))
                    .and_then(hook)
                    .ok_or_else(|| malformed(format!("chain {name}: hook")))?;
                Some(LoadedBase {
                    kind: string(get(&a, 7).unwrap_or_default()),
                    hook,
                    priority: be32(get(&h, 2)).unwrap_or(0) as i32,
                })
            }
            None => None,
        };
        chains.push(LoadedChain {
            name,
            base,
            rules: Vec::new(),
        });
    }
    let index: HashMap<String, usize> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    for m in &d.rules {
        let a = attrs(m)?;
        let chain = string(get(&a, 2).unwrap_or_default());
        let rule = canonical_rule(get(&a, 4).unwrap_or_default(), get(&a, 7))?;
        let i = index
            .get(&chain)
            .ok_or_else(|| malformed(format!("rule of unknown chain {chain}")))?;
        chains[*i].rules.push(rule);
    }
    let (mut sets, mut maps) = (Vec::new(), Vec::new());
    for m in &d.sets {
        match set_info(m)? {
            SetInfo::Set(s) => sets.push(s),
            SetInfo::Map(m) => maps.push(m),
            SetInfo::Anonymous => {}
        }
    }
    for (name, msgs) in &d.elements {
        let elems = msgs
            .iter()
            .map(|m| elements(m))
            .collect::<Result<Vec<_>, _>>()?;
        let elems = elems.iter().flatten();
        if let Some(s) = sets.iter_mut().find(|s| s.name == *name) {
            for Elem { key, .. } in elems {
                let ip = set_element(s.key, key)
                    .ok_or_else(|| malformed(format!("set {name}: key {key:?}")))?;
                s.elements.insert(ip);
            }
        } else if let Some(m) = maps.iter_mut().find(|m| m.name == *name) {
            if let LookupKey::Random(_) = m.key {
                m.elements = ranges(elems.copied().collect())
                    .ok_or_else(|| malformed(format!("map {name}: intervals")))?;
                continue;
            }
            for e in elems {
                let k = map_key(m.key, e.key)
                    .ok_or_else(|| malformed(format!("map {name}: key {:?}", e.key)))?;
                let entry = MapEntry {
                    verdict: verdict(e.data)?,
                    comment: udata_text(e.udata, 0),
                };
                m.elements.insert(k, entry);
            }
        }
    }
    Ok(Loaded { chains, sets, maps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::wire::Writer;

    fn nat(attrs: &[(u16, u32)]) -> Vec<u8> {
        let mut w = Writer::default();
        w.nest(1, |w| {
            w.str(1, "nat");
            w.nest(2, |w| attrs.iter().for_each(|(t, v)| w.be32(*t, *v)));
        });
        w.buf
    }

    #[test]
    fn kernel_defaults_compare_equal_to_what_nft_sends() {
        // As sent: type, family, address and port registers, flags.
        let sent = nat(&[(1, 1), (2, 2), (3, 1), (5, 2), (7, 2)]);
        // As dumped: upper registers filled in, another order, a zero attribute.
        let dumped = nat(&[
            (7, 2),
            (6, 2),
            (5, 2),
            (4, 1),
            (3, 1),
            (2, 2),
            (1, 1),
            (8, 0),
        ]);
        assert_eq!(
            canonical_rule(&sent, None).unwrap(),
            canonical_rule(&dumped, None).unwrap()
        );
        // A real difference stays one.
        let other = nat(&[(1, 1), (2, 2), (3, 1), (4, 2), (5, 2), (7, 2)]);
        assert_ne!(
            canonical_rule(&sent, None).unwrap(),
            canonical_rule(&other, None).unwrap()
        );
        assert_ne!(
            canonical_rule(&sent, None).unwrap(),
            canonical_rule(&sent, Some(&[0, 2, b'x', 0])).unwrap()
        );
    }

    #[test]
    fn every_loaded_rule_has_a_form_and_different_rules_differ() {
        use crate::netlink::encode::loaded_forms;
        use kinet_proxy_rules::{Action, Match, Rule};
        let rules = [
            Rule::new(vec![Match::CtStateNew], Action::Jump("a".into())),
            Rule::new(vec![Match::CtStateNew], Action::Jump("b".into())),
            Rule::always(Action::Goto("a".into())).with_comment("why"),
            Rule::always(Action::Goto("a".into())),
            Rule::always(Action::NumgenGoto(vec!["a".into(), "b".into(), "c".into()])),
            Rule::new(
                vec![Match::L4Proto(Proto::Udp)],
                Action::Dnat("10.244.1.5:53".parse().unwrap()),
            ),
            Rule::new(
                vec![Match::DaddrInSet("ips".into())],
                Action::Vmap {
                    key: LookupKey::DaddrProtoPort,
                    map: "m".into(),
                },
            ),
            Rule::new(vec![Match::MarkClear(0x4000)], Action::Return),
            Rule::always(Action::MarkOr(0x4000)),
            Rule::always(Action::Masquerade),
            Rule::always(Action::UpdateSaddr("aff".into())),
            Rule::always(Action::Reject),
            Rule::always(Action::RejectTcpReset),
        ];
        let mut all = Vec::new();
        for r in &rules {
            let forms = loaded_forms(r);
            assert_eq!(forms.len(), r.loaded_lines().len(), "{r:?}");
            all.extend(forms);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "two different rules share a form");
    }

    #[test]
    fn sets_maps_and_elements_decode_into_the_model() {
        let mut set = Writer::default();
        set.str(1, "kinet");
        set.str(2, "svc");
        set.be32(3, NFT_SET_MAP);
        set.be32(4, TYPE_PROTO_PORT);
        set.bytes(13, &[7, 3, b'h', b'i', 0]);
        let mut elems = Writer::default();
        elems.str(1, "kinet");
        elems.str(2, "svc");
        elems.nest(3, |w| {
            w.nest(1, |w| {
                w.nest(1, |w| w.bytes(1, &[17, 0, 0, 0, 0, 53, 0, 0]));
                w.nest(2, |w| {
                    w.nest(2, |w| {
                        w.be32(1, NFT_CONTINUE_GOTO as u32);
                        w.str(2, "dns");
                    })
                });
            });
        });
        let mut chain = Writer::default();
        chain.str(1, "kinet");
        chain.str(3, "pre");
        chain.str(7, "nat");
        chain.nest(4, |w| {
            w.be32(1, 0);
            w.be32(2, (-100i32) as u32);
        });
        let d = Dumps {
            chains: vec![chain.buf],
            sets: vec![set.buf],
            elements: vec![("svc".into(), vec![elems.buf])],
            ..Dumps::default()
        };
        let t = loaded_table(&d).unwrap();
        assert_eq!(
            t.chains[0].base,
            Some(LoadedBase {
                kind: "nat".into(),
                hook: Hook::Prerouting,
                priority: -100
            })
        );
        let m = &t.maps[0];
        assert_eq!(m.comment.as_deref(), Some("hi"));
        assert_eq!(
            m.elements.get(&MapKey::ProtoPort(Proto::Udp, 53)),
            Some(&MapEntry {
                verdict: MapVerdict::Goto("dns".into()),
                comment: None
            })
        );
    }
}
