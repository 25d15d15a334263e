//! A rule of the model as nf_tables expressions, laid out attribute for attribute
//! the way nft 1.0.6 (libnftnl) sends the same rule text, so `nft list` prints
//! back exactly what a full `nft -f` load prints.

use std::collections::HashMap;

use kinet_proxy_rules::{Action, Ipv4Cidr, LookupKey, Match, Proto, Rule, RANDOM_MODULUS};

use super::wire::Writer;

// Registers: 0 is the verdict, 1 the first 16-byte register; 4-byte registers
// start at 8 (NFT_REG32_00), so a concatenation's second word is 9, third 10.
pub(super) const REG_VERDICT: u32 = 0;
pub(super) const REG_1: u32 = 1;
const REG_2: u32 = 2;
pub(super) const REG32_00: u32 = 8;

pub(super) const PAYLOAD_NETWORK: u32 = 1;
pub(super) const PAYLOAD_TRANSPORT: u32 = 2;
pub(super) const IP_SADDR: u32 = 12;
pub(super) const IP_DADDR: u32 = 16;
pub(super) const TH_DPORT: u32 = 2;

pub(super) const CMP_EQ: u32 = 0;
pub(super) const CMP_NEQ: u32 = 1;

const META_MARK: u32 = 3;
pub(super) const META_L4PROTO: u32 = 16;
pub(super) const CT_STATE: u32 = 0;
const CT_STATE_NEW: u32 = 1 << 3;

pub(crate) const NFT_CONTINUE_GOTO: i32 = -4;
pub(super) const NFT_JUMP: i32 = -3;
pub(super) const NFT_RETURN: i32 = -5;
pub(crate) const NF_DROP: i32 = 0;
pub(super) const NF_ACCEPT: i32 = 1;

/// A kernel verdict: code (`NF_*` / `NFT_*`) and, for jump/goto, the chain.
pub(crate) struct Verdict<'a> {
    pub code: i32,
    pub chain: Option<&'a str>,
}

impl<'a> Verdict<'a> {
    pub(crate) fn goto(chain: &'a str) -> Verdict<'a> {
        Verdict {
            code: NFT_CONTINUE_GOTO,
            chain: Some(chain),
        }
    }
    pub(crate) fn drop() -> Verdict<'static> {
        Verdict {
            code: NF_DROP,
            chain: None,
        }
    }

    /// `NFTA_DATA_VERDICT`: code, then the chain name.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.nest(2, |w| {
            w.be32(1, self.code as u32);
            if let Some(c) = self.chain {
                w.str(2, c);
            }
        });
    }
}

pub(crate) fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// Sets created earlier in the same batch, by name: references to them carry the
/// set's batch id as well, as nft sends them.
pub(crate) type NewSets<'a> = HashMap<&'a str, u32>;

/// Appends the expressions of one loaded rule: `matches`, then `action`.
pub(crate) struct RuleExprs<'a, 'w> {
    pub w: &'w mut Writer,
    pub new_sets: &'a NewSets<'a>,
}

impl RuleExprs<'_, '_> {
    pub(super) fn expr(&mut self, name: &str, f: impl FnOnce(&mut Writer)) {
        self.w.nest(1, |w| {
            w.str(1, name);
            w.nest(2, f);
        });
    }

    pub(super) fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        self.expr("payload", |w| {
            w.be32(1, dreg);
            w.be32(2, base);
            w.be32(3, offset);
            w.be32(4, len);
        });
    }

    fn cmp(&mut self, op: u32, data: &[u8]) {
        self.expr("cmp", |w| {
            w.be32(1, REG_1);
            w.be32(2, op);
            w.nest(3, |w| w.bytes(1, data));
        });
    }

    /// `reg 1 = (reg 1 & mask) ^ xor`; nft sends the boolean op attribute only
    /// for `mark` arithmetic, not for prefix or flag matches.
    fn bitwise(&mut self, mask: &[u8], xor: &[u8], with_op: bool) {
        self.expr("bitwise", |w| {
            w.be32(1, REG_1);
            w.be32(2, REG_1);
            if with_op {
                w.be32(6, 0); // NFT_BITWISE_BOOL
            }
            w.be32(3, mask.len() as u32);
            w.nest(4, |w| w.bytes(1, mask));
            w.nest(5, |w| w.bytes(1, xor));
        });
    }

    pub(super) fn meta_load(&mut self, key: u32, dreg: u32) {
        self.expr("meta", |w| {
            w.be32(2, key);
            w.be32(1, dreg);
        });
    }

    pub(super) fn lookup(&mut self, set: &str, sreg: u32, dreg: Option<u32>) {
        let id = self.new_sets.get(set).copied();
        self.expr("lookup", |w| {
            w.be32(2, sreg);
            if let Some(d) = dreg {
                w.be32(3, d);
            }
            w.str(1, set);
            if let Some(id) = id {
                w.be32(4, id);
            }
        });
    }

    pub(super) fn verdict(&mut self, v: Verdict<'_>) {
        self.expr("immediate", |w| {
            w.be32(1, REG_VERDICT);
            w.nest(2, |w| v.write(w));
        });
    }

    fn immediate(&mut self, dreg: u32, value: &[u8]) {
        self.expr("immediate", |w| {
            w.be32(1, dreg);
            w.nest(2, |w| w.bytes(1, value));
        });
    }

    fn l4proto_is(&mut self, p: Proto) {
        self.meta_load(META_L4PROTO, REG_1);
        self.cmp(CMP_EQ, &[proto_number(p)]);
    }

    /// An address field against a prefix: a whole-byte prefix loads just those
    /// bytes, any other needs the full address masked.
    fn prefix(&mut self, offset: u32, cidr: Ipv4Cidr, op: u32) {
        let p = u32::from(cidr.prefix());
        let mask = u32::from(cidr.netmask());
        let octets = cidr.network().octets();
        if p.is_multiple_of(8) && p > 0 {
            let n = (p / 8) as usize;
            self.payload(PAYLOAD_NETWORK, offset, n as u32, REG_1);
            self.cmp(op, &octets[..n]);
        } else {
            self.payload(PAYLOAD_NETWORK, offset, 4, REG_1);
            self.bitwise(&mask.to_be_bytes(), &[0; 4], false);
            self.cmp(op, &octets);
        }
    }

    /// `ct state <states>`: any of the `NF_CT_STATE_*` bits in `mask`.
    pub(super) fn ct_state_in(&mut self, mask: u32) {
        self.expr("ct", |w| {
            w.be32(2, CT_STATE);
            w.be32(1, REG_1);
        });
        self.bitwise(&mask.to_ne_bytes(), &[0; 4], false);
        self.cmp(CMP_NEQ, &[0; 4]);
    }

    pub(crate) fn matches(&mut self, matches: &[Match]) {
        for m in matches {
            match m {
                Match::CtStateNew => self.ct_state_in(CT_STATE_NEW),
                Match::SaddrIs(ip) => {
                    self.payload(PAYLOAD_NETWORK, IP_SADDR, 4, REG_1);
                    self.cmp(CMP_EQ, &ip.octets());
                }
                Match::DaddrIs(ip) => {
                    self.payload(PAYLOAD_NETWORK, IP_DADDR, 4, REG_1);
                    self.cmp(CMP_EQ, &ip.octets());
                }
                Match::SaddrIn(c) => self.prefix(IP_SADDR, *c, CMP_EQ),
                Match::SaddrNotIn(c) => self.prefix(IP_SADDR, *c, CMP_NEQ),
                Match::DaddrIn(c) => self.prefix(IP_DADDR, *c, CMP_EQ),
                Match::DaddrNotIn(c) => self.prefix(IP_DADDR, *c, CMP_NEQ),
                Match::SaddrInSet(s) => {
                    self.payload(PAYLOAD_NETWORK, IP_SADDR, 4, REG_1);
                    self.lookup(s, REG_1, None);
                }
                Match::DaddrInSet(s) => {
                    self.payload(PAYLOAD_NETWORK, IP_DADDR, 4, REG_1);
                    self.lookup(s, REG_1, None);
                }
                Match::Dport(p, port) => {
                    self.l4proto_is(*p);
                    self.payload(PAYLOAD_TRANSPORT, TH_DPORT, 2, REG_1);
                    self.cmp(CMP_EQ, &port.to_be_bytes());
                }
                Match::L4Proto(p) => self.l4proto_is(*p),
                Match::FibSaddrLocal => {
                    self.expr("fib", |w| {
                        w.be32(3, 1); // NFTA_FIB_F_SADDR
                        w.be32(2, 3); // NFT_FIB_RESULT_ADDRTYPE
                        w.be32(1, REG_1);
                    });
                    self.cmp(CMP_EQ, &2u32.to_ne_bytes()); // RTN_LOCAL
                }
                Match::SaddrDaddrInSet(s) => {
                    self.payload(PAYLOAD_NETWORK, IP_SADDR, 4, REG_1);
                    self.payload(PAYLOAD_NETWORK, IP_DADDR, 4, REG32_00 + 1);
                    self.lookup(s, REG_1, None);
                }
                Match::MarkClear(m) => {
                    self.meta_load(META_MARK, REG_1);
                    self.bitwise(&m.to_ne_bytes(), &[0; 4], true);
                    self.cmp(CMP_EQ, &[0; 4]);
                }
            }
        }
    }

    /// The action of a rule that [`check_rule`] accepted (a random choice's cascade is
    /// written rule by rule by [`RuleExprs::numgen_step`]).
    pub(crate) fn action(&mut self, matches: &[Match], action: &Action) {
        match action {
            Action::Jump(c) => self.verdict(Verdict {
                code: NFT_JUMP,
                chain: Some(c),
            }),
            Action::Goto(c) => self.verdict(Verdict::goto(c)),
            Action::Return => self.verdict(Verdict {
                code: NFT_RETURN,
                chain: None,
            }),
            Action::Accept => self.verdict(Verdict {
                code: NF_ACCEPT,
                chain: None,
            }),
            Action::Drop => self.verdict(Verdict::drop()),
            Action::Reject => self.reject(0, 3), // ICMP port unreachable
            Action::RejectTcpReset => {
                // nft adds the protocol match a TCP reset depends on.
                if !proto_matched(matches, Some(Proto::Tcp)) {
                    self.l4proto_is(Proto::Tcp);
                }
                self.reject(1, 0)
            }
            Action::Vmap { key, map } => {
                let mut reg = REG_1;
                if *key == LookupKey::DaddrProtoPort {
                    self.payload(PAYLOAD_NETWORK, IP_DADDR, 4, REG_1);
                    reg = REG32_00 + 1;
                }
                self.meta_load(META_L4PROTO, reg);
                // Each concatenated field takes whole 4-byte registers.
                let next = if reg == REG_1 { REG32_00 + 1 } else { reg + 1 };
                self.payload(PAYLOAD_TRANSPORT, TH_DPORT, 2, next);
                self.lookup(map, REG_1, Some(REG_VERDICT));
            }
            // Written by numgen_step, one rule per chain.
            Action::NumgenGoto(_) => {}
            Action::MarkOr(m) => self.mark_set(!m, *m),
            Action::MarkXor(m) => self.mark_set(u32::MAX, *m),
            Action::Masquerade => self.expr("masq", |w| w.be32(1, 0x10)), // NF_NAT_RANGE_PROTO_RANDOM_FULLY
            Action::UpdateSaddr(set) => {
                self.payload(PAYLOAD_NETWORK, IP_SADDR, 4, REG_1);
                let id = self.new_sets.get(set.as_str()).copied();
                self.expr("dynset", |w| {
                    w.be32(4, REG_1);
                    w.be32(3, 1); // NFT_DYNSET_OP_UPDATE
                    w.str(1, set);
                    if let Some(id) = id {
                        w.be32(2, id);
                    }
                });
            }
            Action::DnatRandom { map, offset } => self.dnat_random(map, *offset),
            Action::Notrack => self.expr("notrack", |_| {}),
            Action::Dnat(to) => {
                self.immediate(REG_1, &to.ip().octets());
                self.immediate(REG_2, &to.port().to_be_bytes());
                self.expr("nat", |w| {
                    w.be32(1, 1); // NFT_NAT_DNAT
                    w.be32(2, u32::from(super::wire::NFPROTO_IPV4));
                    w.be32(3, REG_1);
                    w.be32(5, REG_2);
                    w.be32(7, 0x2); // NF_NAT_RANGE_PROTO_SPECIFIED
                });
            }
        }
    }

    /// `dnat ip to numgen random mod 65536 offset O map @map`: the number plus `O`, in
    /// network order, looks up `ip . port` into registers 1 and 1's second word, as nft
    /// 1.0.6 writes it.
    fn dnat_random(&mut self, map: &str, offset: u32) {
        self.expr("numgen", |w| {
            w.be32(1, REG_1);
            w.be32(2, RANDOM_MODULUS);
            w.be32(3, 1); // NFT_NG_RANDOM
            w.be32(4, offset); // NFTA_NG_OFFSET
        });
        self.expr("byteorder", |w| {
            w.be32(1, REG_1);
            w.be32(2, REG_1);
            w.be32(3, 1); // NFT_BYTEORDER_HTON
            w.be32(4, 4);
            w.be32(5, 4);
        });
        self.lookup(map, REG_1, Some(REG_1));
        self.expr("nat", |w| {
            w.be32(1, 1); // NFT_NAT_DNAT
            w.be32(2, u32::from(super::wire::NFPROTO_IPV4));
            w.be32(3, REG_1);
            w.be32(5, REG32_00 + 1);
        });
    }

    /// One rule of a random choice's cascade: "1 in `modulus` goto `chain`", or the
    /// unconditional goto that ends it.
    pub(crate) fn numgen_step(&mut self, modulus: Option<u32>, chain: &str) {
        if let Some(m) = modulus {
            self.expr("numgen", |w| {
                w.be32(1, REG_1);
                w.be32(2, m);
                w.be32(3, 1); // NFT_NG_RANDOM
                w.be32(4, 0);
            });
            self.cmp(CMP_EQ, &[0; 4]);
        }
        self.verdict(Verdict::goto(chain));
    }

    fn reject(&mut self, ty: u32, code: u8) {
        self.expr("reject", |w| {
            w.be32(1, ty);
            w.bytes(2, &[code]);
        });
    }

    fn mark_set(&mut self, mask: u32, xor: u32) {
        self.meta_load(META_MARK, REG_1);
        self.bitwise(&mask.to_ne_bytes(), &xor.to_ne_bytes(), true);
        self.expr("meta", |w| {
            w.be32(2, META_MARK);
            w.be32(3, REG_1);
        });
    }
}

/// Whether a match of `matches` fixes the transport protocol (to `p`, if given).
fn proto_matched(matches: &[Match], p: Option<Proto>) -> bool {
    matches.iter().any(|m| match m {
        Match::L4Proto(q) | Match::Dport(q, _) => p.is_none_or(|p| p == *q),
        _ => false,
    })
}

/// Refuses what nft refuses too, before anything is written.
pub(crate) fn check_rule(rule: &Rule) -> Result<(), String> {
    match &rule.action {
        Action::Dnat(to) if !proto_matched(&rule.matches, None) => {
            Err(format!("dnat to {to} without a transport protocol match"))
        }
        Action::DnatRandom { map, .. } if !proto_matched(&rule.matches, None) => Err(format!(
            "dnat through @{map} without a transport protocol match"
        )),
        Action::NumgenGoto(chains) if chains.is_empty() => {
            Err("a random choice among no chains".into())
        }
        _ => Ok(()),
    }
}
