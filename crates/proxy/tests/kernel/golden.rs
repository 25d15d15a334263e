//! Every golden ruleset of kinet-proxy-rules, loaded by the real `nft` into a
//! fresh `unshare --net` namespace: checked, loaded twice (the second load
//! replaces the first), and listed back with every chain and rule present.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::support::root;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proxy-rules/tests/golden")
}

/// Rules per chain in `nft -f` input (`add rule ip kinet <chain> ...`).
fn rules_in_text(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["add", "chain", "ip", _, name, ..] => {
                out.entry(name.to_string()).or_insert(0);
            }
            ["add", "rule", "ip", _, name, ..] => *out.entry(name.to_string()).or_insert(0) += 1,
            _ => {}
        }
    }
    out
}

/// Rules per chain in `nft list table` output.
fn rules_in_listing(listing: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            current = Some(name.trim_matches('"').to_string());
            out.insert(name.trim_matches('"').to_string(), 0);
        } else if line == "}" {
            current = None;
        } else if let Some(c) = &current {
            if !line.is_empty() && !line.starts_with("type ") && !line.starts_with("comment ") {
                *out.get_mut(c).unwrap() += 1;
            }
        }
    }
    out
}

#[test]
fn every_golden_ruleset_loads_in_a_fresh_namespace() {
    if !root() {
        return;
    }
    let mut loaded = 0;
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "nft") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let p = path.display().to_string();
        let script =
            format!("nft -c -f {p} && nft -f {p} && nft -f {p} && nft list table ip kinet");
        let out = Command::new("unshare")
            .args(["--net", "sh", "-ec", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            rules_in_listing(&listing),
            rules_in_text(&text),
            "{}: chains/rules differ after loading:\n{listing}",
            path.display()
        );
        loaded += 1;
    }
    assert!(loaded >= 8, "only {loaded} golden files found");
}
