//! One `PolicyRule` against a request (`RuleAllows`), and rules against rules (`Covers`, the
//! escalation check), as `k8s.io/kubernetes/pkg/apis/rbac/v1` and `registry/rbac/validation` do.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::Attributes;

/// Matches everything in verbs, API groups, resources and non-resource URLs.
pub const ALL: &str = "*";

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

/// Whether `rule` allows the request.
pub fn allows(rule: &PolicyRule, a: &Attributes) -> bool {
    let verbs = &rule.verbs;
    if !(has(verbs, ALL) || has(verbs, &a.verb)) {
        return false;
    }
    if !a.resource_request {
        return list(&rule.non_resource_urls)
            .iter()
            .any(|url| url_matches(url, &a.path));
    }
    let groups = list(&rule.api_groups);
    if !(has(groups, ALL) || has(groups, &a.api_group)) {
        return false;
    }
    let combined = a.combined_resource();
    let resource_matches = list(&rule.resources).iter().any(|r| {
        r == ALL
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let names = list(&rule.resource_names);
    resource_matches && (names.is_empty() || has(names, &a.name))
}

/// `*`, the exact path, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == ALL
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// The rules of `servant` that no rule of `owner` covers (empty: `owner` holds all of them).
/// Each servant rule is broken down to one verb on one resource (or URL) first, as
/// kube-apiserver's `Covers` does.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| covers(o, sub)))
        .collect()
}

fn single(v: &str) -> Option<Vec<String>> {
    Some(vec![v.to_string()])
}

/// One rule per (group, resource, verb[, name]) and per (URL, verb).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let one = |names| PolicyRule {
                    api_groups: single(group),
                    resources: single(resource),
                    verbs: vec![verb.clone()],
                    resource_names: names,
                    non_resource_urls: None,
                };
                match list(&rule.resource_names) {
                    [] => out.push(one(None)),
                    names => out.extend(names.iter().map(|n| one(single(n)))),
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: single(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// `ruleCovers`: `owner` allows everything the broken-down `sub` does.
fn covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let owner_groups = list(&owner.api_groups);
    let groups = has(owner_groups, ALL) || has_all(owner_groups, list(&sub.api_groups));
    let owner_resources = list(&owner.resources);
    let resources = has(owner_resources, ALL)
        || list(&sub.resources).iter().all(|r| {
            has(owner_resources, r)
                || r.split_once('/').is_some_and(|(_, subresource)| {
                    has(owner_resources, &format!("*/{subresource}"))
                })
        });
    let owner_urls = list(&owner.non_resource_urls);
    let urls = list(&sub.non_resource_urls)
        .iter()
        .all(|u| owner_urls.iter().any(|o| url_matches(o, u)));
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && urls && names
}

/// kube-apiserver's refusal when a user grants rules they do not hold (`ConfirmNoEscalation`):
/// `user "bob" (groups=["g"]) is attempting to grant RBAC permissions not currently held:`
/// followed by one line per missing rule.
pub fn escalation_message(user: &crate::UserInfo, missing: &[PolicyRule]) -> String {
    let quote = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lines: Vec<String> = missing
        .iter()
        .map(|r| {
            let mut parts = Vec::new();
            if let Some(g) = &r.api_groups {
                parts.push(format!("APIGroups:[{}]", quote(g)));
            }
            if let Some(res) = &r.resources {
                parts.push(format!("Resources:[{}]", quote(res)));
            }
            if let Some(n) = r.resource_names.as_ref().filter(|n| !n.is_empty()) {
                parts.push(format!("ResourceNames:[{}]", quote(n)));
            }
            if let Some(u) = &r.non_resource_urls {
                parts.push(format!("NonResourceURLs:[{}]", quote(u)));
            }
            parts.push(format!("Verbs:[{}]", quote(&r.verbs)));
            format!("{{{}}}", parts.join(", "))
        })
        .collect();
    format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        quote(&user.groups),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests;
