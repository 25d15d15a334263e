//! One Service's share of the ruleset, for `kinet proxy rules <ns>/<svc>`.
//! Cut from the same `nft -f` text the applier loads, so what a person reads
//! is exactly what the kernel got.

use std::collections::HashSet;

use kinet_proxy_rules::Ruleset;

/// The `nft` lines that belong to `ns/svc`: its chains and their rules, the
/// affinity sets they use, and the map elements that lead to them (or that
/// drop/reject its traffic when it has no endpoints). Empty if the service
/// has no rules on this node.
pub fn rules_for(ruleset: &Ruleset, ns: &str, svc: &str) -> String {
    let chains: HashSet<&str> = ruleset
        .chains_for(ns, svc)
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    let prefix = format!("add rule ip {} ", ruleset.table());
    let element_prefix = format!("add element ip {} ", ruleset.table());
    let chain_prefix = format!("add chain ip {} ", ruleset.table());
    let set_prefix = format!("add set ip {} ", ruleset.table());
    // No-endpoint elements carry the service's display name `ns/svc:port`.
    let comment = format!("comment \"{ns}/{svc}:");

    let text = ruleset.to_nft();
    let mut decls = Vec::new();
    let mut rules = Vec::new();
    let mut elements = Vec::new();
    let mut sets: HashSet<&str> = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let chain = rest.split(' ').next().unwrap_or_default();
            if chains.contains(chain) {
                rules.push(line);
                sets.extend(
                    rest.split(' ')
                        .filter_map(|w| w.strip_prefix('@'))
                        .filter(|s| s.starts_with("affinity-")),
                );
            }
        } else if let Some(rest) = line.strip_prefix(&chain_prefix) {
            if chains.contains(rest) {
                decls.push(line);
            }
        } else if line.starts_with(&element_prefix) {
            let target = line
                .rsplit_once(" goto ")
                .map(|(_, t)| t.trim_end_matches(" }"));
            if target.is_some_and(|t| chains.contains(t)) || line.contains(&comment) {
                elements.push(line);
            }
        }
    }
    let set_decls = text.lines().filter(|l| {
        l.strip_prefix(&set_prefix)
            .and_then(|r| r.split(' ').next())
            .is_some_and(|name| sets.contains(name))
    });

    let mut out = String::new();
    for line in set_decls.chain(decls).chain(rules).chain(elements) {
        out.push_str(line);
        out.push('\n');
    }
    out
}
