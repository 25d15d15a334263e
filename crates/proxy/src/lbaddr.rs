//! Holds this node's LoadBalancer addresses (see [`crate::announce`]) as /32s on `lo` under
//! the label `lo:kinet-lb` in the node's namespace, through `nsenter --net=<ns> ip`. (A dummy
//! link, as kube-proxy's `kube-ipvs0`, needs a kernel module that is not always there; the
//! label keeps ours apart from anything else on `lo`.) Idempotent: each call makes the
//! labelled addresses exactly the given set.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The address label that marks announced addresses on `lo`.
pub const LB_LINK: &str = "lo:kinet-lb";

#[derive(Debug, thiserror::Error)]
#[error("ip {args}: {message}")]
pub struct LbAddrError {
    args: String,
    message: String,
}

/// The addresses one node announces, kept on [`LB_LINK`].
#[derive(Debug)]
pub struct LbAddresses {
    netns: PathBuf,
    /// What the last successful sync left; `None` forces a read of the kernel state.
    held: Option<BTreeSet<Ipv4Addr>>,
}

impl LbAddresses {
    pub fn new(netns: impl Into<PathBuf>) -> LbAddresses {
        LbAddresses {
            netns: netns.into(),
            held: None,
        }
    }

    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// Makes `lo` hold exactly `want` under the label.
    pub fn sync(&mut self, want: &BTreeSet<Ipv4Addr>) -> Result<(), LbAddrError> {
        if self.held.as_ref() == Some(want) {
            return Ok(());
        }
        let result = self.sync_from_kernel(want);
        self.held = result.as_ref().ok().map(|_| want.clone());
        result
    }

    /// Forgets what it believes is held (after a tamper or a failed sync).
    pub fn force(&mut self) {
        self.held = None;
    }

    fn sync_from_kernel(&self, want: &BTreeSet<Ipv4Addr>) -> Result<(), LbAddrError> {
        let out = self.ip(&["-4", "-o", "addr", "show", "dev", "lo", "label", LB_LINK])?;
        let have = parse_addrs(&out);
        for ip in want.difference(&have) {
            let cidr = format!("{ip}/32");
            self.ip(&["addr", "replace", &cidr, "dev", "lo", "label", LB_LINK])?;
        }
        for ip in have.difference(want) {
            self.ip(&[
                "addr",
                "del",
                &format!("{ip}/32"),
                "dev",
                "lo",
                "label",
                LB_LINK,
            ])?;
        }
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> Result<String, LbAddrError> {
        let err = |message: String| LbAddrError {
            args: args.join(" "),
            message,
        };
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("ip")
            .args(args)
            .output()
            .map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Addresses in `ip -4 -o addr show` output.
fn parse_addrs(out: &str) -> BTreeSet<Ipv4Addr> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_output() {
        let out = "1: lo    inet 172.18.255.192/32 scope global lo:kinet-lb\\       valid_lft forever preferred_lft forever\n\
                   1: lo    inet 172.18.255.200/32 scope global lo:kinet-lb\\       valid_lft forever preferred_lft forever\n";
        let got: Vec<String> = parse_addrs(out).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["172.18.255.192", "172.18.255.200"]);
        assert!(parse_addrs("").is_empty());
    }
}
