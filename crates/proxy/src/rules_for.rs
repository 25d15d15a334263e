//! One Service's share of the ruleset, for `kinet proxy rules <ns>/<svc>`.
//! Cut from the same `nft -f` text the applier loads, so what a person reads
//! is exactly what the kernel got.

use std::collections::HashSet;

use kinet_proxy_rules::{Ruleset, RANDOM_MODULUS};

/// The `nft` lines that belong to `ns/svc`: its chains and their rules, the affinity sets
/// they use with their elements, its endpoint groups' elements of the endpoints map, and the
/// map elements that lead to them (or that drop/reject its traffic when it has no
/// endpoints). Empty if the service has no rules on this node.
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
    let map_prefix = format!("add map ip {} ", ruleset.table());
    // No-endpoint elements carry the service's display name `ns/svc:port`.
    let comment = format!("comment \"{ns}/{svc}:");

    let text = ruleset.to_nft();
    let mut decls = Vec::new();
    let mut rules = Vec::new();
    let mut elements = Vec::new();
    let mut sets: HashSet<&str> = HashSet::new();
    let mut groups: HashSet<u32> = HashSet::new();
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
                groups.extend(group_offset(rest));
            }
        } else if let Some(rest) = line.strip_prefix(&chain_prefix) {
            if chains.contains(rest) {
                decls.push(line);
            }
        } else if let Some(rest) = line.strip_prefix(&element_prefix) {
            let mut words = rest.split(' ');
            let (set, key) = (words.next().unwrap_or_default(), words.nth(1));
            let in_group = set.starts_with("endpoints-")
                && key
                    .and_then(range_group)
                    .is_some_and(|g| groups.contains(&g));
            if sets.contains(set) || in_group {
                elements.push(line);
                continue;
            }
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
            .or_else(|| l.strip_prefix(&map_prefix))
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

/// The offset of the endpoint group a rule picks from (`... offset N map @...`).
fn group_offset(rule: &str) -> Option<u32> {
    let mut words = rule.split(' ');
    words.find(|w| *w == "offset")?;
    words.next()?.parse().ok()
}

/// The endpoint group (its offset) an element key `lo-hi` of the endpoints map is in.
fn range_group(key: &str) -> Option<u32> {
    let (lo, hi) = key.split_once('-')?;
    let (lo, _): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
    Some(lo - lo % RANDOM_MODULUS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kinet_proxy_rules::{render, NodeInfo, ProxyConfig};
    use serde_json::json;

    fn svc(name: &str, ip: &str, affinity: bool) -> Service {
        let mut spec = json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80}]});
        if affinity {
            spec["sessionAffinity"] = json!("ClientIP");
        }
        serde_json::from_value(
            json!({"metadata": {"namespace": "default", "name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(name: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": format!("{name}-1"),
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]
        }))
        .unwrap()
    }

    fn ruleset() -> Ruleset {
        let node = NodeInfo {
            name: "node-a".into(),
            node_ips: vec![],
            pod_cidr: None,
        };
        render(
            &[
                svc("web", "10.96.0.20", true),
                svc("api", "10.96.0.21", false),
                svc("lonely", "10.96.0.22", false),
            ],
            &[slice("web", "10.244.1.5"), slice("api", "10.244.1.6")],
            &node,
            &ProxyConfig::default(),
        )
    }

    #[test]
    fn only_the_services_own_lines() {
        let rs = ruleset();
        let web = rules_for(&rs, "default", "web");
        let lines: Vec<&str> = web.lines().collect();
        // Affinity set, service + endpoint chains, their rules, the map element.
        assert!(lines[0].starts_with("add set ip kinet affinity-"), "{web}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("add chain ip kinet service-")));
        assert!(web.contains("dnat to 10.244.1.5:8080"), "{web}");
        assert!(web.contains("update @affinity-"), "{web}");
        assert!(web
            .contains("add element ip kinet service-ips { 10.96.0.20 . tcp . 80 : goto service-"));
        assert!(
            !web.contains("10.244.1.6") && !web.contains("10.96.0.21"),
            "{web}"
        );
        assert!(
            !web.contains("services ip daddr"),
            "skeleton rules are not the service's: {web}"
        );
        // api's endpoint group, not the others'.
        let api = rules_for(&rs, "default", "api");
        assert!(
            api.contains(
                "add element ip kinet endpoints-tcp-0 { 65536-131071 : 10.244.1.6 . 8080 }"
            ),
            "{api}"
        );
        assert_eq!(api.matches("endpoints-tcp-0 {").count(), 1, "{api}");
        // Every line is one of the loaded lines.
        let all = rs.to_nft();
        assert!(web.lines().all(|l| all.lines().any(|a| a == l)));
    }

    #[test]
    fn no_endpoint_services_show_their_reject_element() {
        let rs = ruleset();
        let lonely = rules_for(&rs, "default", "lonely");
        // It keeps its chain and its (empty) endpoint group, so 0→N changes elements only,
        // and its reject element.
        let lines: Vec<&str> = lonely.lines().collect();
        assert_eq!(
            lines,
            [
                "add chain ip kinet service-OCFJIDWF-default/lonely/tcp/http",
                "add rule ip kinet service-OCFJIDWF-default/lonely/tcp/http ip daddr 10.96.0.22 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                "add rule ip kinet service-OCFJIDWF-default/lonely/tcp/http meta l4proto tcp dnat ip to numgen random mod 65536 offset 131072 map @endpoints-tcp-0",
                "add element ip kinet no-endpoint-services { 10.96.0.22 . tcp . 80 comment \"default/lonely:http\" : goto reject-chain }",
                "add element ip kinet service-ips { 10.96.0.22 . tcp . 80 : goto service-OCFJIDWF-default/lonely/tcp/http }",
            ]
        );
        assert_eq!(rules_for(&rs, "default", "missing"), "");
    }
}

/// The same cut from a live `nft list table` listing: the blocks of the chains and sets named
/// after `ns/svc` (sets with their current affinity entries), and from each map only the
/// elements that lead to those chains, carry the service's no-endpoint comment, or are in
/// one of its endpoint groups.
pub fn rules_in_listing(listing: &str, ns: &str, svc: &str) -> String {
    let owned = format!("-{ns}/{svc}/");
    let comment = format!("comment \"{ns}/{svc}:");
    // (head, name, lines) of every chain, set and map block.
    let mut blocks = Vec::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        let head = line.trim();
        let is_block = ["chain ", "set ", "map "]
            .iter()
            .any(|k| head.starts_with(k))
            && head.ends_with('{');
        if !is_block {
            continue;
        }
        // Collect the block up to its closing brace.
        let mut block = vec![line];
        let mut depth = 1i32;
        for l in lines.by_ref() {
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            block.push(l);
            if depth <= 0 {
                break;
            }
        }
        let name = head.split_whitespace().nth(1).unwrap_or_default();
        blocks.push((head, name, block));
    }
    let groups: HashSet<u32> = (blocks.iter())
        .filter(|(head, name, _)| head.starts_with("chain ") && name.contains(&owned))
        .flat_map(|(_, _, block)| block.iter().filter_map(|l| group_offset(l.trim())))
        .collect();
    let mut out = String::new();
    for (head, name, block) in blocks {
        if name.contains(&owned) {
            for l in block {
                out.push_str(l);
                out.push('\n');
            }
        } else if head.starts_with("map ") {
            let text = block.join("\n");
            let Some((_, rest)) = text.split_once("elements = {") else {
                continue;
            };
            let elements = rest.split('}').next().unwrap_or_default();
            let mine: Vec<&str> = elements
                .split(',')
                .map(str::trim)
                .filter(|e| {
                    e.contains(&owned)
                        || e.contains(&comment)
                        || (e.split(' ').next().and_then(range_group))
                            .is_some_and(|g| groups.contains(&g))
                })
                .collect();
            if !mine.is_empty() {
                out.push_str(&format!("\tmap {name} {{\n"));
                for e in mine {
                    out.push_str(&format!("\t\t{e}\n"));
                }
                out.push_str("\t}\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod listing_tests {
    use super::rules_in_listing;

    const LISTING: &str = "table ip kinet {
\tset affinity-AAAA-default/web/tcp/http__10.244.1.5/8080 {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\telements = { 10.244.2.9 timeout 10m expires 9m }
\t}
\tmap no-endpoint-services {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.22 . tcp . 80 comment \"default/lonely:http\" : goto reject-chain }
\t}
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.20 . tcp . 80 : goto service-BBBB-default/web/tcp/http,
\t\t\t     10.96.0.21 . tcp . 80 : goto service-CCCC-default/web2/tcp/http }
\t}
\tchain service-BBBB-default/web/tcp/http {
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-AAAA-default/web/tcp/http__10.244.1.5/8080 }
\t}
\tchain service-CCCC-default/web2/tcp/http {
\t\tmeta l4proto tcp dnat ip to numgen random mod 65536 offset 131072 map @endpoints
\t}
\tchain service-DDDD-default/api/tcp/http {
\t\tmeta l4proto tcp dnat ip to numgen random mod 65536 offset 65536 map @endpoints
\t}
\tmap endpoints {
\t\ttypeof numgen random mod 65536 : ip daddr . tcp dport
\t\tflags interval
\t\telements = { 65536-98303 : 10.244.1.6 . 8080,
\t\t\t     98304-131071 : 10.244.1.7 . 8080,
\t\t\t     131072-196607 : 10.244.1.8 . 8080 }
\t}
}
";

    #[test]
    fn cuts_blocks_and_elements_of_one_service() {
        let web = rules_in_listing(LISTING, "default", "web");
        assert!(web.contains("set affinity-AAAA-default/web/tcp/http__10.244.1.5/8080 {"));
        assert!(web.contains("10.244.2.9 timeout 10m"), "{web}");
        assert!(web.contains("10.96.0.20 . tcp . 80 : goto service-BBBB-default/web/tcp/http"));
        assert!(web.contains("chain service-BBBB-default/web/tcp/http {"));
        assert!(
            !web.contains("web2") && !web.contains("10.96.0.21"),
            "{web}"
        );
        assert!(!web.contains("no-endpoint"), "{web}");
        let api = rules_in_listing(LISTING, "default", "api");
        assert!(api.contains("map endpoints {"), "{api}");
        assert!(api.contains("65536-98303 : 10.244.1.6 . 8080"), "{api}");
        assert!(api.contains("98304-131071 : 10.244.1.7 . 8080"), "{api}");
        assert!(!api.contains("10.244.1.8"), "{api}");
        let lonely = rules_in_listing(LISTING, "default", "lonely");
        assert!(lonely.contains("map no-endpoint-services"), "{lonely}");
        assert!(lonely.contains("goto reject-chain"), "{lonely}");
        assert_eq!(rules_in_listing(LISTING, "default", "missing"), "");
    }
}
