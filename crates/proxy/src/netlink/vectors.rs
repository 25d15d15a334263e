//! The encoder against what nft 1.0.6 sends. `testdata/update.nft` is
//! `Update::to_nft()` of the update below; `testdata/update.hex` is every message nft
//! sent for it (`nft --debug=mnl -f update.nft` in a namespace holding
//! `testdata/base.nft`): message type, then the bytes after the netlink header. Only
//! sequence numbers, flags and the set ids nft gives sets it did not create in the
//! batch (the kernel finds those by name) are left out of the comparison. No two
//! neighbouring element lines there touch one set the same way: the encoder would send
//! them in one message, as nft does for the elements of one command (tested below on
//! their own).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use std::collections::BTreeMap;

use kinet_proxy_rules::{
    Action, Change, LookupKey, Map, MapEntry, MapKey, MapVerdict, Match, Proto, Rule, Set, SetKey,
    Update,
};

use super::encode::{encode_update, Origin};
use super::read::{elements, get};
use super::wire::NLMSG_HDRLEN;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn rule(matches: Vec<Match>, action: Action) -> Change {
    Change::AddRule {
        chain: "svc".into(),
        rule: Rule::new(matches, action),
    }
}

fn commented(chain: &str, matches: Vec<Match>, action: Action, c: &'static str) -> Change {
    Change::AddRule {
        chain: chain.into(),
        rule: Rule::new(matches, action).with_comment(c),
    }
}

fn set(name: &str, timeout: Option<u32>, comment: Option<&str>) -> Change {
    Change::AddSet(Set {
        name: name.into(),
        key: SetKey::Addr,
        comment: comment.map(String::from),
        timeout_secs: timeout,
        elements: BTreeSet::new(),
    })
}

/// An element of an endpoints map: keys `lo..=hi` to `ep`.
fn endpoint(map: &str, lo: u32, hi: u32, ep: &str) -> Change {
    Change::AddMapElement {
        map: map.into(),
        key: MapKey::Range(lo, hi),
        entry: MapEntry {
            verdict: MapVerdict::Endpoint(ep.parse().unwrap()),
            comment: None,
        },
    }
}

/// The sets and maps the update creates, in order.
const NEW: [&str; 5] = ["affinity-a", "affinity-b", "plain", "bare", "eps"];

fn update() -> Update {
    use Action::*;
    use Match::*;
    let cidr = |s: &str| s.parse().unwrap();
    let dnat = |p, map: &str, offset| {
        rule(
            vec![L4Proto(p)],
            DnatRandom {
                map: map.into(),
                offset,
            },
        )
    };
    let changes = vec![
        set("affinity-a", Some(600), None),
        set("affinity-b", Some(10800), Some("sticky")),
        set("plain", None, Some("Active ClusterIPs")),
        set("bare", None, None),
        Change::AddMap(Map {
            name: "eps".into(),
            key: LookupKey::Random(Proto::Udp),
            comment: Some("udp endpoints".into()),
            elements: BTreeMap::new(),
        }),
        Change::AddChain("svc".into()),
        Change::AddChain("ep-1".into()),
        Change::AddChain("ep-2".into()),
        Change::AddChain("ep-3".into()),
        Change::FlushChain("c2".into()),
        rule(vec![CtStateNew], Jump("c2".into())),
        rule(vec![SaddrIs(ip("10.244.1.5"))], Jump("c2".into())),
        commented(
            "svc",
            vec![SaddrIn(cidr("10.244.0.0/16"))],
            Goto("c2".into()),
            "short-circuit pod traffic",
        ),
        rule(vec![SaddrIn(cidr("10.0.0.0/8"))], Accept),
        rule(vec![SaddrIn(cidr("10.244.1.0/24"))], Accept),
        rule(vec![SaddrIn(cidr("10.244.1.7/32"))], Accept),
        rule(vec![SaddrIn(cidr("10.244.16.0/20"))], Accept),
        rule(vec![SaddrIn(cidr("0.0.0.0/0"))], Accept),
        rule(vec![SaddrIn(cidr("128.0.0.0/1"))], Accept),
        rule(
            vec![DaddrIs(ip("10.96.0.50")), SaddrNotIn(cidr("10.244.0.0/16"))],
            Jump("c2".into()),
        ),
        rule(vec![SaddrNotIn(cidr("10.96.0.0/12"))], Drop),
        rule(vec![SaddrInSet("affinity-a".into())], Goto("ep-1".into())),
        commented(
            "svc",
            vec![DaddrIn(cidr("10.96.0.0/12"))],
            Drop,
            "Drop traffic to unallocated ClusterIPs",
        ),
        commented(
            "svc",
            vec![DaddrInSet("cluster-ips".into())],
            Reject,
            "Reject traffic to invalid ports of ClusterIPs",
        ),
        rule(vec![Dport(Proto::Tcp, 80)], Accept),
        rule(vec![Dport(Proto::Udp, 53)], Accept),
        rule(vec![Dport(Proto::Sctp, 7001)], Accept),
        rule(vec![L4Proto(Proto::Udp)], Return),
        rule(vec![L4Proto(Proto::Sctp)], Return),
        commented(
            "svc",
            vec![FibSaddrLocal],
            Jump("c2".into()),
            "masquerade local traffic",
        ),
        rule(vec![MarkClear(0x4000)], Return),
        rule(vec![], MarkOr(0x4000)),
        rule(vec![], MarkXor(0x4000)),
        rule(vec![], Masquerade),
        rule(
            vec![],
            Vmap {
                key: LookupKey::DaddrProtoPort,
                map: "service-ips".into(),
            },
        ),
        rule(
            vec![DaddrInSet("cluster-ips".into())],
            Vmap {
                key: LookupKey::ProtoPort,
                map: "no-endpoint-nodeports".into(),
            },
        ),
        rule(vec![L4Proto(Proto::Tcp)], RejectTcpReset),
        rule(vec![], Reject),
        rule(vec![], RejectTcpReset),
        rule(vec![Dport(Proto::Tcp, 443)], RejectTcpReset),
        rule(
            vec![],
            NumgenGoto(vec!["ep-1".into(), "ep-2".into(), "ep-3".into()]),
        ),
        // Loaded without its comment, as `Update::to_nft` writes a cascade.
        commented(
            "svc",
            vec![DaddrIs(ip("10.96.0.50"))],
            NumgenGoto(vec!["ep-1".into(), "ep-2".into()]),
            "pick",
        ),
        rule(vec![], Drop),
        rule(vec![], Return),
        rule(vec![], Accept),
        // In a map loaded before (base.nft) and in one made in the batch; the last group.
        dnat(Proto::Tcp, "endpoints-tcp", 65536),
        dnat(Proto::Udp, "eps", 131072),
        dnat(Proto::Tcp, "endpoints-tcp", 65535 * 65536),
        Change::AddRule {
            chain: "ep-1".into(),
            rule: Rule::always(UpdateSaddr("affinity-a".into())),
        },
        Change::AddRule {
            chain: "ep-1".into(),
            rule: Rule::new(
                vec![L4Proto(Proto::Tcp)],
                Dnat(SocketAddrV4::new(ip("10.244.1.5"), 8080)),
            ),
        },
        Change::AddRule {
            chain: "ep-2".into(),
            rule: Rule::new(
                vec![L4Proto(Proto::Udp)],
                Dnat(SocketAddrV4::new(ip("10.244.2.7"), 53)),
            ),
        },
        Change::AddRule {
            chain: "ep-3".into(),
            rule: Rule::new(
                vec![L4Proto(Proto::Sctp)],
                Dnat(SocketAddrV4::new(ip("10.244.2.8"), 7001)),
            ),
        },
        Change::DeleteMapElement {
            map: "service-ips".into(),
            key: MapKey::Addr(ip("10.96.0.50"), Proto::Tcp, 80),
        },
        Change::AddMapElement {
            map: "service-ips".into(),
            key: MapKey::Addr(ip("10.96.0.52"), Proto::Tcp, 80),
            entry: MapEntry {
                verdict: MapVerdict::Goto("svc".into()),
                comment: None,
            },
        },
        Change::DeleteMapElement {
            map: "no-endpoint-nodeports".into(),
            key: MapKey::ProtoPort(Proto::Tcp, 30080),
        },
        Change::AddMapElement {
            map: "service-ips".into(),
            key: MapKey::Addr(ip("10.96.0.53"), Proto::Udp, 53),
            entry: MapEntry {
                verdict: MapVerdict::Drop,
                comment: Some("default/x:dns has no endpoints".into()),
            },
        },
        Change::AddMapElement {
            map: "no-endpoint-nodeports".into(),
            key: MapKey::ProtoPort(Proto::Sctp, 30082),
            entry: MapEntry {
                verdict: MapVerdict::Drop,
                comment: Some("default/y:z has no endpoints".into()),
            },
        },
        Change::DeleteMapElement {
            map: "endpoints-tcp".into(),
            key: MapKey::Range(98304, 131071),
        },
        Change::AddMapElement {
            map: "no-endpoint-nodeports".into(),
            key: MapKey::ProtoPort(Proto::Udp, 30083),
            entry: MapEntry {
                verdict: MapVerdict::Goto("svc".into()),
                comment: None,
            },
        },
        endpoint("endpoints-tcp", 98304, 114687, "10.244.2.7:8080"),
        // The last key's interval has no end element.
        Change::DeleteMapElement {
            map: "endpoints-tcp".into(),
            key: MapKey::Range(65535 * 65536, u32::MAX),
        },
        endpoint("endpoints-tcp", 65535 * 65536, u32::MAX, "10.244.1.21:7001"),
        Change::DeleteSetElement {
            set: "cluster-ips".into(),
            key: SetKey::Addr,
            addr: ip("10.96.0.50"),
        },
        Change::AddSetElement {
            set: "cluster-ips".into(),
            key: SetKey::Addr,
            addr: ip("10.96.0.52"),
        },
        Change::AddSetElement {
            set: "plain".into(),
            key: SetKey::Addr,
            addr: ip("10.96.0.53"),
        },
        Change::FlushChain("c3".into()),
        Change::FlushChain("c4".into()),
        Change::DeleteChain("c3".into()),
        Change::DeleteChain("c4".into()),
        Change::DeleteSet("aff2".into()),
    ];
    Update {
        table: "kinet".into(),
        changes,
    }
}

/// Attributes of `buf`: (type without flag bits, nested, payload).
fn attrs(mut buf: &[u8]) -> Vec<(u16, bool, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]);
        out.push((ty & 0x3fff, ty & 0x8000 != 0, &buf[4..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

fn name(data: &[u8]) -> String {
    String::from_utf8_lossy(data.strip_suffix(&[0]).unwrap_or(data)).into_owned()
}

#[derive(Clone, Copy)]
enum Ctx<'a> {
    Message(u8),
    Exprs,
    Expr,
    ExprData(&'a str),
    Other,
}

/// Re-encodes attributes, dropping the set id of references to sets not created in
/// the batch: element lists' `SET_ID` (4, next to `SET` 2), `lookup`'s `SET_ID` (4,
/// next to `SET` 1), `dynset`'s `SET_ID` (2, next to `SET_NAME` 1).
fn normalize(buf: &[u8], ctx: Ctx<'_>, new: &[&str], out: &mut Vec<u8>) {
    let list = attrs(buf);
    let string = |key: u16| {
        list.iter()
            .find(|(t, n, _)| *t == key && !n)
            .map(|(_, _, d)| name(d))
    };
    let (id_attr, set) = match ctx {
        Ctx::Message(12 | 14) => (4, string(2)),
        Ctx::ExprData("lookup") => (4, string(1)),
        Ctx::ExprData("dynset") => (2, string(1)),
        _ => (0, None),
    };
    let expr = string(1).unwrap_or_default();
    for (ty, nested, data) in &list {
        if *ty == id_attr && set.as_deref().is_some_and(|s| !new.contains(&s)) {
            continue;
        }
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(ty | if *nested { 0x8000 } else { 0 }).to_ne_bytes());
        if *nested {
            let inner = match (ctx, ty) {
                (Ctx::Message(6), 4) => Ctx::Exprs,
                (Ctx::Exprs, 1) => Ctx::Expr,
                (Ctx::Expr, 2) => Ctx::ExprData(&expr),
                _ => Ctx::Other,
            };
            normalize(data, inner, new, out);
        } else {
            out.extend_from_slice(data);
        }
        let len = (out.len() - start) as u16;
        out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
}

/// (message type, normalized body) of every message between BATCH_BEGIN and END.
fn messages(batch: &[u8], new: &[&str]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut buf = batch;
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if ty >> 8 == 10 {
            let msg = ty as u8;
            let body = &buf[NLMSG_HDRLEN..len];
            let mut norm = body[..4].to_vec();
            normalize(&body[4..], Ctx::Message(msg), new, &mut norm);
            out.push((msg, hex(&norm)));
        }
        buf = &buf[len..];
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// nft's messages in the same form as [`messages`].
fn recorded(new: &[&str]) -> Vec<(u8, String)> {
    include_str!("testdata/update.hex")
        .lines()
        .map(|l| {
            let (ty, body) = l.split_once(' ').unwrap();
            let ty: u8 = ty.parse().unwrap();
            let body = unhex(body);
            let mut norm = body[..4].to_vec();
            normalize(&body[4..], Ctx::Message(ty), new, &mut norm);
            (ty, hex(&norm))
        })
        .collect()
}

#[test]
fn the_update_renders_as_the_recorded_nft_input() {
    assert_eq!(update().to_nft(), include_str!("testdata/update.nft"));
}

#[test]
fn every_message_matches_what_nft_sends() {
    let batch = encode_update(&update(), 100).unwrap();
    let ours = messages(&batch.bytes, &NEW);
    let theirs = recorded(&NEW);
    let lines: Vec<&str> = include_str!("testdata/update.nft").lines().collect();
    assert_eq!(ours.len(), theirs.len(), "message count");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "message {i}: {}", lines[i]);
    }
}

#[test]
fn references_to_sets_made_in_the_batch_carry_their_id() {
    // nft numbers the sets it creates in a batch from 1; the update's elements of
    // "plain" (the third) and its dynset on "affinity-a" (the first) say so.
    let batch = encode_update(&update(), 1).unwrap();
    let all = messages(&batch.bytes, &NEW);
    let theirs = recorded(&NEW);
    assert_eq!(all, theirs);
    let plain_elem = all
        .iter()
        .find(|(t, b)| *t == 12 && b.contains(&hex(b"plain\0")))
        .unwrap();
    assert!(plain_elem.1.contains(&hex(&[8, 0, 4, 0, 0, 0, 0, 3])));
}

#[test]
fn sequence_numbers_run_from_begin_to_end_and_name_their_lines() {
    let u = update();
    let batch = encode_update(&u, 500).unwrap();
    let mut seqs = Vec::new();
    let mut buf = &batch.bytes[..];
    while !buf.is_empty() {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        seqs.push(u32::from_ne_bytes(buf[8..12].try_into().unwrap()));
        buf = &buf[len..];
    }
    let expected: Vec<u32> = (500..500 + seqs.len() as u32).collect();
    assert_eq!(seqs, expected);
    assert_eq!(batch.acked_seqs(), 501..500 + seqs.len() as u32 - 1);
    let lines: Vec<&str> = include_str!("testdata/update.nft").lines().collect();
    for (i, seq) in batch.acked_seqs().enumerate() {
        assert_eq!(batch.describe(&u, seq).as_deref(), Some(lines[i]));
    }
    assert_eq!(batch.describe(&u, 500), None);
}

#[test]
fn dnat_without_a_protocol_match_is_refused_like_nft_does() {
    let u = Update {
        table: "kinet".into(),
        changes: vec![Change::AddRule {
            chain: "ep".into(),
            rule: Rule::always(Action::Dnat(SocketAddrV4::new(ip("10.0.0.1"), 80))),
        }],
    };
    let err = encode_update(&u, 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("without a transport protocol match"),
        "{err}"
    );
}

/// Each nf_tables message of a batch: its type, set name and elements (key, key end,
/// data, userdata, interval end), flattened.
type Flat = Vec<(u8, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, bool)>;

fn flat_elements(batch: &[u8]) -> (usize, Flat) {
    let (mut count, mut out) = (0, Vec::new());
    let mut buf = batch;
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if ty >> 8 == 10 {
            count += 1;
            let body = &buf[NLMSG_HDRLEN + 4..len];
            let set = get(&super::read::attrs(body).unwrap(), 2).unwrap().to_vec();
            for e in elements(body).unwrap() {
                let own = |b: Option<&[u8]>| b.unwrap_or_default().to_vec();
                let (key, end) = (e.key.to_vec(), own(e.key_end));
                out.push((
                    ty as u8,
                    set.clone(),
                    key,
                    end,
                    own(e.data),
                    own(e.udata),
                    e.end,
                ));
            }
        }
        buf = &buf[len..];
    }
    (count, out)
}

#[test]
fn neighbouring_elements_of_one_set_share_a_message() {
    let mut changes = vec![
        endpoint("endpoints-tcp", 0, 21845, "10.244.1.5:80"),
        endpoint("endpoints-tcp", 21846, 43690, "10.244.1.6:80"),
        endpoint("endpoints-tcp", 43691, 65535, "10.244.1.7:80"),
    ];
    // Enough addresses for more than one message's worth.
    changes.extend((0..5000u32).map(|i| Change::AddSetElement {
        set: "cluster-ips".into(),
        key: SetKey::Addr,
        addr: Ipv4Addr::from(0x0a60_0000 + i),
    }));
    let u = Update {
        table: "kinet".into(),
        changes: changes.clone(),
    };
    let batch = encode_update(&u, 1).unwrap();
    let (merged, elems) = flat_elements(&batch.bytes);
    let (singles, single_elems): (Vec<usize>, Vec<Flat>) = changes
        .iter()
        .map(|c| {
            let one = Update {
                table: "kinet".into(),
                changes: vec![c.clone()],
            };
            flat_elements(&encode_update(&one, 1).unwrap().bytes)
        })
        .unzip();
    assert_eq!(singles.iter().sum::<usize>(), 5003);
    assert_eq!(elems, single_elems.concat());
    assert!((3..10).contains(&merged), "{merged} messages");
    assert_eq!(
        batch.origins[0],
        Origin {
            change: 0,
            line: 0,
            more: 2
        }
    );
    assert_eq!(batch.origins[1].change, 3);
    assert_eq!(
        batch.origins.iter().map(|o| o.more + 1).sum::<usize>(),
        5003
    );
    let first = batch.describe(&u, 2).unwrap();
    assert!(
        first.ends_with("{ 0-21845 : 10.244.1.5 . 80 } (and 2 more elements in the same message)"),
        "{first}"
    );
}
