//! Reading the NetworkPolicy table back (pure): the dumps of `table ip kinet-policy` as the
//! `kinet_policy::Ruleset` they hold, so that a resync plans from the kernel's own state
//! (`kinet_policy::plan`) and sends only what differs. Anything the policy encoder never
//! writes (another expression, an inverted lookup, a base chain of another kind or policy,
//! a map of another type) is an error: the caller then replaces the whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use kinet_policy::{Action, AddrField, Chain, Element, Hook, Match, Rule, Ruleset, Set, SetKind};

use super::encode::{
    DATA_VERDICT, NFT_SET_MAP, TYPE_ADDR_PROTO_PORT, TYPE_IPADDR, TYPE_PROTO_PORT,
};
use super::expr::{
    CMP_NEQ, CT_STATE, IP_DADDR, IP_SADDR, META_L4PROTO, NFT_JUMP, NFT_RETURN, NF_ACCEPT, NF_DROP,
    PAYLOAD_NETWORK, PAYLOAD_TRANSPORT, REG32_00, REG_1, REG_VERDICT, TH_DPORT,
};
use super::policy::{
    CT_ESTABLISHED_RELATED, NFT_BYTEORDER_HTON, NFT_OBJECT_COUNTER, NFT_SET_CONCAT,
    NFT_SET_INTERVAL,
};
use super::read::{attrs, be32, elements, get, intervals, malformed, proto, string, udata_text};
use super::read::{Dumps, Elem, NFT_SET_ANONYMOUS};
use super::NetlinkError;

/// The policy table `table` the dumps describe, with the named counters `counters`.
/// Per-pod chains come back without their direction and the table without the node's
/// addresses: neither is in the kernel, and neither changes what `plan` sends.
pub fn loaded_policy(
    table: &str,
    d: &Dumps,
    counters: impl IntoIterator<Item = String>,
) -> Result<Ruleset, NetlinkError> {
    let mut rs = Ruleset {
        table: table.to_string(),
        counters: counters.into_iter().collect(),
        ..Ruleset::default()
    };
    for m in &d.chains {
        rs.chains.push(chain(m)?);
    }
    for m in &d.rules {
        let a = attrs(m)?;
        let name = string(get(&a, 2).unwrap_or_default());
        let rule = rule(get(&a, 4).unwrap_or_default(), get(&a, 7))
            .map_err(|e| malformed(format!("rule of chain {name}: {e}")))?;
        let c = rs.chains.iter_mut().find(|c| c.name == name);
        c.ok_or_else(|| malformed(format!("rule of unknown chain {name}")))?
            .rules
            .push(rule);
    }
    for m in &d.sets {
        let a = attrs(m)?;
        let name = string(get(&a, 2).ok_or_else(|| malformed("set without a name"))?);
        let flags = be32(get(&a, 3)).unwrap_or(0);
        if flags & NFT_SET_ANONYMOUS != 0 {
            continue; // a rule's own; no policy rule has one, so that rule fails to read
        }
        let key = be32(get(&a, 4));
        if flags & NFT_SET_MAP != 0 {
            if (key, be32(get(&a, 6))) != (Some(TYPE_IPADDR), Some(DATA_VERDICT)) {
                return Err(malformed(format!("map {name}: not ipv4_addr : verdict")));
            }
            rs.maps.insert(name, BTreeMap::new());
            continue;
        }
        let kind = match (key, flags) {
            (Some(TYPE_IPADDR), NFT_SET_INTERVAL) => SetKind::Addr,
            (Some(TYPE_PROTO_PORT), f) if f == NFT_SET_INTERVAL | NFT_SET_CONCAT => {
                SetKind::ProtoPort
            }
            (Some(TYPE_ADDR_PROTO_PORT), 0) => SetKind::AddrProtoPort,
            other => return Err(malformed(format!("set {name}: type and flags {other:?}"))),
        };
        rs.sets.push(Set {
            comment: udata_text(get(&a, 13), 7).unwrap_or_default(),
            name,
            kind,
            elements: BTreeSet::new(),
        });
    }
    for (name, msgs) in &d.elements {
        let mut elems = Vec::new();
        for m in msgs {
            elems.extend(elements(m)?);
        }
        let bad = || malformed(format!("elements of {name}"));
        if let Some(s) = rs.sets.iter_mut().find(|s| s.name == *name) {
            s.elements = set_elements(s.kind, elems).ok_or_else(bad)?;
        } else if let Some(m) = rs.maps.get_mut(name) {
            for e in elems {
                let addr = <[u8; 4]>::try_from(e.key).map_err(|_| bad())?;
                m.insert(addr.into(), jump(e.data).ok_or_else(bad)?);
            }
        }
    }
    Ok(rs)
}

fn chain(m: &[u8]) -> Result<Chain, NetlinkError> {
    let a = attrs(m)?;
    let name = string(get(&a, 3).ok_or_else(|| malformed("chain without a name"))?);
    let hook = match get(&a, 4) {
        None => None,
        Some(h) => {
            let h = attrs(h)?;
            let hook = match be32(get(&h, 1)) {
                Some(1) => Hook::Input,
                Some(2) => Hook::Forward,
                other => return Err(malformed(format!("chain {name}: hook {other:?}"))),
            };
            let kind = string(get(&a, 7).unwrap_or_default());
            let priority = be32(get(&h, 2)).unwrap_or(0);
            let policy = be32(get(&a, 5)).unwrap_or(NF_ACCEPT as u32);
            if (kind.as_str(), priority, policy) != ("filter", 0, NF_ACCEPT as u32) {
                return Err(malformed(format!(
                    "chain {name}: type {kind}, priority {priority}, policy {policy}"
                )));
            }
            Some(hook)
        }
    };
    Ok(Chain {
        name,
        hook,
        direction: None,
        rules: Vec::new(),
    })
}

/// A set's elements by kind; `None` when one has another shape.
fn set_elements(kind: SetKind, elems: Vec<Elem<'_>>) -> Option<BTreeSet<Element>> {
    let port = |k: &[u8]| Some(u16::from_be_bytes(k.get(4..6)?.try_into().ok()?));
    match kind {
        SetKind::Addr => {
            let ranges = intervals(elems, |_| Some(()))?;
            let range = |(lo, hi, ()): (u32, u32, ())| Element::Range(lo.into(), hi.into());
            Some(ranges.into_iter().map(range).collect())
        }
        SetKind::ProtoPort => elems
            .into_iter()
            .map(|e| {
                let (key, end) = (e.key, e.key_end?);
                let p = proto(*key.first()?)?;
                (key.len() == 8 && end.len() == 8 && end[0] == key[0])
                    .then_some(Element::ProtoPorts(p, port(key)?, port(end)?))
            })
            .collect(),
        SetKind::AddrProtoPort => elems
            .into_iter()
            .map(|e| {
                let k = e.key;
                let ip = Ipv4Addr::from(<[u8; 4]>::try_from(k.get(..4)?).ok()?);
                let rest = k.get(4..)?;
                (k.len() == 12).then_some(Element::AddrProtoPort(ip, proto(rest[0])?, port(rest)?))
            })
            .collect(),
    }
}

/// The chain a verdict-map element jumps to.
fn jump(data: Option<&[u8]>) -> Option<String> {
    let d = attrs(data?).ok()?;
    let v = attrs(get(&d, 2)?).ok()?;
    let chain = get(&v, 2)?;
    (be32(get(&v, 1))? as i32 == NFT_JUMP).then(|| string(chain))
}

/// One expression of a policy rule, as the encoder writes them.
#[derive(Debug, PartialEq)]
enum Expr {
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Meta {
        key: u32,
        dreg: u32,
    },
    /// `ct state` into register 1.
    CtState,
    /// Register 1 masked (and nothing else).
    Mask(Vec<u8>),
    /// Register 1 is not zero.
    NonZero,
    /// The protocol byte of a `protocol . port` key, in network order.
    ProtoToNetwork,
    Lookup {
        set: String,
        dreg: Option<u32>,
    },
    Verdict(i32),
    Counter(String),
}

/// The attributes of one expression's data; any attribute outside `known` must be absent
/// or zero (the kernel dumps some defaults), else the expression is not one of ours.
fn fields<'a>(data: &'a [u8], known: &[u16]) -> Result<Vec<(u16, &'a [u8])>, String> {
    let a = attrs(data).map_err(|e| e.to_string())?;
    match a
        .iter()
        .find(|(t, v)| !known.contains(t) && v.iter().any(|b| *b != 0))
    {
        Some((t, _)) => Err(format!("attribute {t} set")),
        None => Ok(a),
    }
}

fn value<'a>(a: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    get(&attrs(get(a, ty)?).ok()?, 1)
}

fn expr(e: &[u8]) -> Result<Expr, String> {
    let e = attrs(e).map_err(|e| e.to_string())?;
    let name = string(get(&e, 1).ok_or("an expression without a name")?);
    let data = get(&e, 2).unwrap_or_default();
    let n = |a: &[(u16, &[u8])], ty| be32(get(a, ty)).unwrap_or(0);
    let out = match name.as_str() {
        "payload" => {
            let a = fields(data, &[1, 2, 3, 4])?;
            Expr::Payload {
                dreg: n(&a, 1),
                base: n(&a, 2),
                offset: n(&a, 3),
                len: n(&a, 4),
            }
        }
        "meta" => {
            let a = fields(data, &[1, 2])?;
            Expr::Meta {
                dreg: n(&a, 1),
                key: n(&a, 2),
            }
        }
        "ct" => {
            let a = fields(data, &[1, 2])?;
            if (n(&a, 1), n(&a, 2)) != (REG_1, CT_STATE) {
                return Err("ct other than state into register 1".into());
            }
            Expr::CtState
        }
        "bitwise" => {
            // Register 1 into itself, 4 bytes, xor zero (NFT_BITWISE_BOOL is 0).
            let a = fields(data, &[1, 2, 3, 4, 5])?;
            let xor = value(&a, 5).unwrap_or_default();
            if (n(&a, 1), n(&a, 2), n(&a, 3)) != (REG_1, REG_1, 4) || xor.iter().any(|b| *b != 0) {
                return Err("bitwise other than a mask of register 1".into());
            }
            Expr::Mask(value(&a, 4).unwrap_or_default().to_vec())
        }
        "cmp" => {
            let a = fields(data, &[1, 2, 3])?;
            let zero = value(&a, 3).is_some_and(|v| v == [0; 4]);
            if (n(&a, 1), n(&a, 2), zero) != (REG_1, CMP_NEQ, true) {
                return Err("cmp other than register 1 != 0".into());
            }
            Expr::NonZero
        }
        "byteorder" => {
            let a = fields(data, &[1, 2, 3, 4, 5])?;
            let got: Vec<u32> = (1..=5).map(|t| n(&a, t)).collect();
            if got != [REG_1, REG_1, NFT_BYTEORDER_HTON, 1, 2] {
                return Err(format!("byteorder {got:?}"));
            }
            Expr::ProtoToNetwork
        }
        "lookup" => {
            // 4 is the set's id in the batch that made it; 5 the flags (inverted: not ours).
            let a = fields(data, &[1, 2, 3, 4])?;
            if n(&a, 2) != REG_1 {
                return Err("lookup from another register".into());
            }
            Expr::Lookup {
                set: string(get(&a, 1).ok_or("lookup without a set")?),
                dreg: be32(get(&a, 3)),
            }
        }
        "immediate" => {
            let a = fields(data, &[1, 2])?;
            let d = attrs(get(&a, 2).unwrap_or_default()).map_err(|e| e.to_string())?;
            let v = fields(get(&d, 2).ok_or("immediate other than a verdict")?, &[1])?;
            if n(&a, 1) != REG_VERDICT {
                return Err("immediate into a data register".into());
            }
            Expr::Verdict(n(&v, 1) as i32)
        }
        "objref" => {
            let a = fields(data, &[1, 2])?;
            if n(&a, 1) != NFT_OBJECT_COUNTER {
                return Err("objref other than a counter".into());
            }
            Expr::Counter(string(get(&a, 2).ok_or("objref without a name")?))
        }
        other => return Err(format!("expression {other}")),
    };
    Ok(out)
}

fn field(offset: u32) -> Option<AddrField> {
    match offset {
        IP_SADDR => Some(AddrField::Saddr),
        IP_DADDR => Some(AddrField::Daddr),
        _ => None,
    }
}

/// A rule from its `NFTA_RULE_EXPRESSIONS` and userdata.
fn rule(exprs: &[u8], udata: Option<&[u8]>) -> Result<Rule, String> {
    let list = attrs(exprs).map_err(|e| e.to_string())?;
    let exprs = list
        .iter()
        .map(|(_, e)| expr(e))
        .collect::<Result<Vec<_>, _>>()?;
    let addr = |e: &Expr| match *e {
        Expr::Payload {
            base: PAYLOAD_NETWORK,
            offset,
            len: 4,
            dreg: REG_1,
        } => field(offset),
        _ => None,
    };
    let l4proto = |e: &Expr, reg| {
        *e == Expr::Meta {
            key: META_L4PROTO,
            dreg: reg,
        }
    };
    let dport = |e: &Expr, reg| {
        *e == Expr::Payload {
            base: PAYLOAD_TRANSPORT,
            offset: TH_DPORT,
            len: 2,
            dreg: reg,
        }
    };
    let mut matches = Vec::new();
    let mut rest = &exprs[..];
    let action = loop {
        match rest {
            [Expr::CtState, Expr::Mask(m), Expr::NonZero, tail @ ..]
                if m[..] == CT_ESTABLISHED_RELATED.to_ne_bytes() =>
            {
                matches.push(Match::CtEstablishedRelated);
                rest = tail;
            }
            [a, Expr::Lookup { set, dreg: None }, tail @ ..] if addr(a).is_some() => {
                matches.push(Match::AddrInSet(addr(a).expect("checked"), set.clone()));
                rest = tail;
            }
            [m, Expr::ProtoToNetwork, p, Expr::Lookup { set, dreg: None }, tail @ ..]
                if l4proto(m, REG_1) && dport(p, REG32_00 + 1) =>
            {
                matches.push(Match::ProtoPortInSet(set.clone()));
                rest = tail;
            }
            [a, m, p, Expr::Lookup { set, dreg: None }, tail @ ..]
                if addr(a) == Some(AddrField::Daddr)
                    && l4proto(m, REG32_00 + 1)
                    && dport(p, REG32_00 + 2) =>
            {
                matches.push(Match::DaddrProtoPortInSet(set.clone()));
                rest = tail;
            }
            [Expr::Verdict(NF_ACCEPT)] => break Action::Accept,
            [Expr::Verdict(NF_DROP)] => break Action::Drop,
            [Expr::Verdict(NFT_RETURN)] => break Action::Return,
            [Expr::Counter(name)] => break Action::Count(name.clone()),
            [a, Expr::Lookup {
                set,
                dreg: Some(REG_VERDICT),
            }] if addr(a).is_some() => break Action::Vmap(addr(a).expect("checked"), set.clone()),
            other => return Err(format!("expressions {other:?}")),
        }
    };
    Ok(Rule {
        matches,
        action,
        comment: udata_text(udata, 0), // NFTNL_UDATA_RULE_COMMENT
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::policy::rule_forms;

    fn rules() -> Vec<Rule> {
        let rule = |matches, action, comment: Option<&str>| Rule {
            matches,
            action,
            comment: comment.map(str::to_string),
        };
        vec![
            rule(vec![Match::CtEstablishedRelated], Action::Accept, None),
            rule(
                vec![],
                Action::Vmap(AddrField::Saddr, "egress-pods".into()),
                None,
            ),
            rule(
                vec![],
                Action::Vmap(AddrField::Daddr, "ingress-pods".into()),
                None,
            ),
            rule(
                vec![
                    Match::AddrInSet(AddrField::Saddr, "peers".into()),
                    Match::ProtoPortInSet("ports".into()),
                ],
                Action::Return,
                Some("x/db ingress[0]"),
            ),
            rule(
                vec![
                    Match::AddrInSet(AddrField::Daddr, "peers".into()),
                    Match::DaddrProtoPortInSet("named".into()),
                ],
                Action::Return,
                Some("x/web egress[1]"),
            ),
            rule(vec![], Action::Count("drops-x".into()), None),
            rule(vec![], Action::Drop, None),
        ]
    }

    #[test]
    fn every_rule_the_encoder_writes_reads_back_as_itself() {
        for r in rules() {
            let (exprs, udata) = rule_forms(&r).unwrap();
            assert_eq!(rule(&exprs, udata.as_deref()), Ok(r));
        }
    }

    #[test]
    fn expressions_the_encoder_never_writes_are_refused() {
        let (exprs, _) = rule_forms(&rules()[3]).unwrap();
        // The first lookup inverted (NFTA_LOOKUP_FLAGS = NFT_LOOKUP_F_INV): not ours.
        let list = attrs(&exprs).unwrap();
        let mut w = crate::netlink::wire::Writer::default();
        for (i, (_, e)) in list.iter().enumerate() {
            let a = attrs(e).unwrap();
            w.nest(1, |w| {
                w.str(1, &string(get(&a, 1).unwrap()));
                w.nest(2, |w| {
                    for (t, v) in attrs(get(&a, 2).unwrap()).unwrap() {
                        w.bytes(t, v);
                    }
                    if i == 1 {
                        w.be32(5, 1);
                    }
                });
            });
        }
        let err = rule(&w.buf, None).unwrap_err();
        assert!(err.contains("attribute 5"), "{err}");
        // A verdict and then more: not a policy rule either.
        let mut twice = exprs.clone();
        twice.extend_from_slice(&exprs);
        assert!(rule(&twice, None).is_err());
    }
}
