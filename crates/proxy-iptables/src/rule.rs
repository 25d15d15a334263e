//! iptables rules as data: matches and one target, written in the argument order
//! kube-proxy uses, so the same value is loaded by `iptables-restore` and interpreted by
//! the tracer.

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use kinet_proxy_rules::{Ipv4Cidr, Proto};

/// One condition; all of a rule's matches must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// `-m tcp -p tcp`
    Proto(Proto),
    /// `-s 10.244.1.5`
    Src(Ipv4Addr),
    /// `-s 10.244.0.0/16`
    SrcIn(Ipv4Cidr),
    /// `! -s 10.244.0.0/16`
    SrcNotIn(Ipv4Cidr),
    /// `-d 10.96.0.10`
    Dst(Ipv4Addr),
    /// `--dport 80` (after a `Proto`)
    Dport(u16),
    /// `-m addrtype --src-type LOCAL`: sent by this node.
    SrcLocal,
    /// `-m addrtype --dst-type LOCAL`: addressed to this node.
    DstLocal,
    /// `-m statistic --mode random --probability 1/n`
    OneIn(usize),
    /// `-m recent --name <list> --rcheck --seconds <s> --reap`: the source is on the list.
    RecentCheck { list: String, seconds: u32 },
    /// `-m recent --name <list> --set`: puts the source on the list (always matches).
    RecentSet(String),
    /// `-m mark --mark M/M`
    Mark(u32),
    /// `-m mark ! --mark M/M`
    NotMark(u32),
    /// `-m conntrack --ctstate NEW`
    CtNew,
    /// `-m conntrack --ctstate RELATED,ESTABLISHED`
    CtEstablished,
}

/// What a rule does once its matches hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `-j <chain>`
    Jump(String),
    /// `-j DNAT --to-destination ip:port`
    Dnat(SocketAddrV4),
    /// `-j MARK --or-mark M`
    MarkOr(u32),
    /// `-j MARK --xor-mark M`
    MarkXor(u32),
    /// `-j MASQUERADE --random-fully`
    Masquerade,
    /// `-j REJECT` (ICMP port unreachable: the client fails at once)
    Reject,
    /// `-j DROP`
    Drop,
    /// `-j ACCEPT`
    Accept,
    /// `-j RETURN`
    Return,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `-m comment --comment ...`: which Service and why.
    pub comment: Option<String>,
    pub matches: Vec<Match>,
    pub target: Target,
}

impl Rule {
    pub fn new(comment: Option<String>, matches: Vec<Match>, target: Target) -> Rule {
        Rule {
            comment,
            matches,
            target,
        }
    }

    /// The rule's arguments after `-A <chain>`.
    pub fn args(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.comment {
            out.push_str(" -m comment --comment ");
            push_word(&mut out, c);
        }
        for m in &self.matches {
            // Writing to a String cannot fail.
            let _ = write!(out, " {m}");
        }
        let _ = write!(out, " {}", self.target);
        out
    }
}

/// A word of an `iptables-restore` line, quoted when it holds spaces (as iptables-save
/// prints comments).
fn push_word(out: &mut String, word: &str) {
    if word.contains(' ') {
        out.push('"');
        out.push_str(&word.replace('"', "'"));
        out.push('"');
    } else {
        out.push_str(word);
    }
}

/// kube-proxy's `probability(n)`: `%0.10f` of 1/n.
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Proto(p) => write!(f, "-m {p} -p {p}"),
            Match::Src(ip) => write!(f, "-s {ip}"),
            Match::SrcIn(c) => write!(f, "-s {c}"),
            Match::SrcNotIn(c) => write!(f, "! -s {c}"),
            Match::Dst(ip) => write!(f, "-d {ip}"),
            Match::Dport(p) => write!(f, "--dport {p}"),
            Match::SrcLocal => f.write_str("-m addrtype --src-type LOCAL"),
            Match::DstLocal => f.write_str("-m addrtype --dst-type LOCAL"),
            Match::OneIn(n) => write!(
                f,
                "-m statistic --mode random --probability {}",
                probability(*n)
            ),
            Match::RecentCheck { list, seconds } => write!(
                f,
                "-m recent --name {list} --rcheck --seconds {seconds} --reap"
            ),
            Match::RecentSet(list) => write!(f, "-m recent --name {list} --set"),
            Match::Mark(m) => write!(f, "-m mark --mark {m:#x}/{m:#x}"),
            Match::NotMark(m) => write!(f, "-m mark ! --mark {m:#x}/{m:#x}"),
            Match::CtNew => f.write_str("-m conntrack --ctstate NEW"),
            Match::CtEstablished => f.write_str("-m conntrack --ctstate RELATED,ESTABLISHED"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Jump(c) => write!(f, "-j {c}"),
            Target::Dnat(to) => write!(f, "-j DNAT --to-destination {to}"),
            Target::MarkOr(m) => write!(f, "-j MARK --or-mark {m:#x}"),
            Target::MarkXor(m) => write!(f, "-j MARK --xor-mark {m:#x}"),
            Target::Masquerade => f.write_str("-j MASQUERADE --random-fully"),
            Target::Reject => f.write_str("-j REJECT"),
            Target::Drop => f.write_str("-j DROP"),
            Target::Accept => f.write_str("-j ACCEPT"),
            Target::Return => f.write_str("-j RETURN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_like_kube_proxys() {
        let r = Rule::new(
            Some("ns1/svc1:p80 cluster IP".into()),
            vec![
                Match::Proto(Proto::Tcp),
                Match::Dst(Ipv4Addr::new(172, 30, 0, 41)),
                Match::Dport(80),
            ],
            Target::Jump("KUBE-SVC-XPGD46QRK7WJZT7O".into()),
        );
        assert_eq!(
            r.args(),
            r#" -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O"#
        );
        let r = Rule::new(
            Some("ns1/svc1:p80".into()),
            vec![Match::OneIn(3), Match::NotMark(0x4000)],
            Target::MarkOr(0x4000),
        );
        assert_eq!(
            r.args(),
            " -m comment --comment ns1/svc1:p80 -m statistic --mode random --probability 0.3333333333 -m mark ! --mark 0x4000/0x4000 -j MARK --or-mark 0x4000"
        );
    }
}
