//! Rendering a `Ruleset` as `nft -f` input.
//!
//! The output is one atomic transaction in the flat command syntax kube-proxy's
//! knftables uses: ensure the table exists, delete it (dropping everything the
//! previous sync left, including stale chains), re-create it, declare every
//! set, map and chain, then add rules and elements. Declarations come first
//! so rules and map elements only ever refer to objects that already exist.

use std::fmt::Write;

use std::net::Ipv4Addr;

use crate::model::{
    Action, BaseChain, Hook, LookupKey, Map, MapEntry, MapKey, MapVerdict, Match, Rule, Ruleset,
    Set, SetKey, RANDOM_MODULUS,
};

impl Ruleset {
    /// The ruleset as `nft -f` input (one transaction).
    pub fn to_nft(&self) -> String {
        let t = format!("ip {}", self.table);
        // Roughly 100 bytes per rule/element keeps reallocations rare at 10k services.
        let mut out = String::with_capacity(128 * (self.rule_count() + self.chains.len()));
        let _ = writeln!(out, "add table {t}");
        let _ = writeln!(out, "delete table {t}");
        write_add_table(&mut out, &t, self.comment.as_deref());
        out.push('\n');

        for set in &self.sets {
            let _ = writeln!(out, "add set {t} {} {{ {} }}", set.name, set_spec(set));
        }
        for map in &self.maps {
            let _ = writeln!(out, "add map {t} {} {{ {} }}", map.name, map_spec(map));
        }
        out.push('\n');

        for chain in &self.chains {
            match &chain.base {
                Some(b) => write_base_chain(&mut out, &t, &chain.name, b),
                None => {
                    let _ = writeln!(out, "add chain {t} {}", chain.name);
                }
            }
        }
        out.push('\n');

        for chain in &self.chains {
            let prefix = format!("add rule {t} {} ", chain.name);
            for rule in &chain.rules {
                write_rule_lines(&mut out, &prefix, rule);
            }
        }
        out.push('\n');

        for set in &self.sets {
            for ip in &set.elements {
                let _ = write!(out, "add element {t} {} {{ ", set.name);
                write_set_element(&mut out, set.key, *ip);
                out.push_str(" }\n");
            }
        }
        for map in &self.maps {
            for (key, entry) in &map.elements {
                let _ = write!(out, "add element {t} {} {{ ", map.name);
                write_key(&mut out, key);
                write_entry(&mut out, entry);
                out.push_str(" }\n");
            }
        }
        out
    }
}

/// `add table <t>`, with the table's comment if any.
pub(crate) fn write_add_table(out: &mut String, t: &str, comment: Option<&str>) {
    let _ = match comment {
        Some(c) => writeln!(out, "add table {t} {{ comment \"{c}\" ; }}"),
        None => writeln!(out, "add table {t}"),
    };
}

pub(crate) fn write_base_chain(out: &mut String, t: &str, name: &str, b: &BaseChain) {
    let _ = writeln!(
        out,
        "add chain {t} {name} {{ type {} hook {} priority {} ; }}",
        b.kind,
        hook_name(b.hook),
        b.priority
    );
}

pub(crate) fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// A set element as nft writes it.
pub(crate) fn write_set_element(out: &mut String, key: SetKey, ip: Ipv4Addr) {
    let _ = match key {
        SetKey::Addr => write!(out, "{ip}"),
        SetKey::SelfPair => write!(out, "{ip} . {ip}"),
    };
}

/// A map element's comment and data, after its key.
pub(crate) fn write_entry(out: &mut String, entry: &MapEntry) {
    if let Some(c) = &entry.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
    out.push_str(" : ");
    let _ = match &entry.verdict {
        MapVerdict::Goto(c) => write!(out, "goto {c}"),
        MapVerdict::Drop => write!(out, "drop"),
        MapVerdict::Endpoint(to) => write!(out, "{} . {}", to.ip(), to.port()),
    };
}

pub(crate) fn set_spec(set: &Set) -> String {
    let mut s = String::from(match set.key {
        SetKey::Addr => "type ipv4_addr ;",
        SetKey::SelfPair => "type ipv4_addr . ipv4_addr ;",
    });
    if let Some(secs) = set.timeout_secs {
        // "dynamic" too: the kernel adds it for sets updated from the packet
        // path, and a later re-add without it would be a flags change.
        let _ = write!(s, " flags dynamic,timeout ; timeout {secs}s ;");
    }
    if let Some(c) = &set.comment {
        let _ = write!(s, " comment \"{c}\" ;");
    }
    s
}

pub(crate) fn map_spec(map: &Map) -> String {
    let mut s = match map.key {
        LookupKey::DaddrProtoPort => {
            "type ipv4_addr . inet_proto . inet_service : verdict ;".into()
        }
        LookupKey::ProtoPort => "type inet_proto . inet_service : verdict ;".into(),
        LookupKey::Random(p) => format!(
            "typeof numgen random mod {RANDOM_MODULUS} : ip daddr . {p} dport ; flags interval ;"
        ),
    };
    if let Some(c) = &map.comment {
        let _ = write!(s, " comment \"{c}\" ;");
    }
    s
}

pub(crate) fn write_key(out: &mut String, key: &MapKey) {
    let _ = match key {
        MapKey::Addr(ip, proto, port) => write!(out, "{ip} . {proto} . {port}"),
        MapKey::ProtoPort(proto, port) => write!(out, "{proto} . {port}"),
        MapKey::Range(lo, hi) => write!(out, "{lo}-{hi}"),
    };
}

fn lookup_expr(key: LookupKey) -> &'static str {
    match key {
        LookupKey::DaddrProtoPort => "ip daddr . meta l4proto . th dport",
        LookupKey::ProtoPort => "meta l4proto . th dport",
        // Not a lookup a verdict map is keyed by.
        LookupKey::Random(_) => "numgen random",
    }
}

/// Writes one rule body (everything after `add rule <table> <chain>`).
/// `rule` as the `nft` lines that load it, each `prefix` + body + newline. A random choice
/// among N chains becomes a cascade, as kube-proxy's iptables mode does it: "1 in N goto the
/// first, else 1 in N-1 goto the second, ..., else the last", which is uniform. It is not the
/// one-rule `numgen random mod N vmap { ... }`: each of those makes an anonymous set, and the
/// kernel names a new anonymous set by scanning every set of the table, so loading 10,000
/// Services took minutes (quadratic) instead of seconds. Only a connection's first packet
/// passes the NAT chains, so the extra rules cost nothing per packet.
pub(crate) fn write_rule_lines(out: &mut String, prefix: &str, rule: &Rule) {
    if let Action::NumgenGoto(chains) = &rule.action {
        let n = chains.len();
        for (i, c) in chains.iter().enumerate() {
            out.push_str(prefix);
            write_matches(out, rule);
            let _ = if i + 1 < n {
                writeln!(out, "numgen random mod {} == 0 goto {c}", n - i)
            } else {
                writeln!(out, "goto {c}")
            };
        }
        return;
    }
    out.push_str(prefix);
    write_rule(out, rule);
    out.push('\n');
}

impl Rule {
    /// The rules the kernel holds for this one, as `nft` text after `add rule <t> <chain> `:
    /// one line, or a cascade's several.
    pub fn loaded_lines(&self) -> Vec<String> {
        let mut out = String::new();
        write_rule_lines(&mut out, "", self);
        out.lines().map(String::from).collect()
    }
}

pub(crate) fn write_rule(out: &mut String, rule: &Rule) {
    write_matches(out, rule);
    write_action(out, rule);
}

fn write_matches(out: &mut String, rule: &Rule) {
    for m in &rule.matches {
        let _ = match m {
            Match::CtStateNew => write!(out, "ct state new "),
            Match::SaddrIs(ip) => write!(out, "ip saddr {ip} "),
            Match::SaddrIn(c) => write!(out, "ip saddr {c} "),
            Match::SaddrNotIn(c) => write!(out, "ip saddr != {c} "),
            Match::SaddrInSet(s) => write!(out, "ip saddr @{s} "),
            Match::DaddrIs(ip) => write!(out, "ip daddr {ip} "),
            Match::DaddrIn(c) => write!(out, "ip daddr {c} "),
            Match::DaddrNotIn(c) => write!(out, "ip daddr != {c} "),
            Match::DaddrInSet(s) => write!(out, "ip daddr @{s} "),
            Match::Dport(p, port) => write!(out, "{p} dport {port} "),
            Match::L4Proto(p) => write!(out, "meta l4proto {p} "),
            Match::FibSaddrLocal => write!(out, "fib saddr type local "),
            Match::MarkClear(m) => write!(out, "mark and {m:#x} == 0 "),
            Match::SaddrDaddrInSet(s) => write!(out, "ip saddr . ip daddr @{s} "),
        };
    }
}

/// The action and comment; a NumgenGoto here is the single-rule vmap form (display only:
/// loads use the cascade of `write_rule_lines`).
fn write_action(out: &mut String, rule: &Rule) {
    let _ = match &rule.action {
        Action::Jump(c) => write!(out, "jump {c}"),
        Action::Goto(c) => write!(out, "goto {c}"),
        Action::Return => write!(out, "return"),
        Action::Accept => write!(out, "accept"),
        Action::Drop => write!(out, "drop"),
        Action::Reject => write!(out, "reject"),
        Action::RejectTcpReset => write!(out, "reject with tcp reset"),
        Action::Vmap { key, map } => write!(out, "{} vmap @{map}", lookup_expr(*key)),
        Action::NumgenGoto(chains) => {
            let _ = write!(out, "numgen random mod {} vmap {{ ", chains.len());
            for (i, c) in chains.iter().enumerate() {
                if i > 0 {
                    // Spaced like knftables, so a name never touches the comma.
                    out.push_str(" , ");
                }
                let _ = write!(out, "{i} : goto {c}");
            }
            write!(out, " }}")
        }
        Action::MarkOr(m) => write!(out, "mark set mark or {m:#x}"),
        Action::MarkXor(m) => write!(out, "mark set mark xor {m:#x}"),
        Action::Masquerade => write!(out, "masquerade fully-random"),
        Action::UpdateSaddr(s) => write!(out, "update @{s} {{ ip saddr }}"),
        Action::Dnat(to) => write!(out, "dnat to {to}"),
        Action::Notrack => write!(out, "notrack"),
        Action::DnatRandom { map, offset } => write!(
            out,
            "dnat ip to numgen random mod {RANDOM_MODULUS} offset {offset} map @{map}"
        ),
    };
    if let Some(c) = rule.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn text(rule: Rule) -> String {
        let mut s = String::new();
        write_rule(&mut s, &rule);
        s
    }

    #[test]
    fn random_choice_loads_as_a_uniform_cascade() {
        let mut out = String::new();
        let rule = Rule::always(Action::NumgenGoto(vec!["a".into(), "b".into(), "c".into()]));
        write_rule_lines(&mut out, "add rule ip t s ", &rule);
        assert_eq!(
            out,
            "add rule ip t s numgen random mod 3 == 0 goto a\n\
             add rule ip t s numgen random mod 2 == 0 goto b\n\
             add rule ip t s goto c\n"
        );
    }

    #[test]
    fn rules_render_like_kube_proxy() {
        let ep = SocketAddrV4::new(Ipv4Addr::new(10, 180, 0, 1), 80);
        assert_eq!(
            text(Rule::new(
                vec![Match::L4Proto(Proto::Tcp)],
                Action::Dnat(ep)
            )),
            "meta l4proto tcp dnat to 10.180.0.1:80"
        );
        assert_eq!(
            text(Rule::always(Action::NumgenGoto(vec![
                "a".into(),
                "b".into()
            ]))),
            "numgen random mod 2 vmap { 0 : goto a , 1 : goto b }"
        );
        assert_eq!(
            text(Rule::new(vec![Match::MarkClear(0x4000)], Action::Return)),
            "mark and 0x4000 == 0 return"
        );
        assert_eq!(
            text(Rule::new(
                vec![Match::DaddrInSet("nodeport-ips".into())],
                Action::Vmap {
                    key: LookupKey::ProtoPort,
                    map: "service-nodeports".into()
                }
            )),
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
        );
    }
}
