//! ClusterRole aggregation (kube-controller-manager's `clusterrole-aggregation` controller):
//! a ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its selectors
//! match, in name order, without duplicates.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kinet_selectors::LabelSelector;
use serde_json::{Map, Value};

/// The rules each aggregated ClusterRole should hold, for those whose stored rules differ:
/// `(name, rules)`. Aggregated roles may select each other (`view` aggregates into `edit`,
/// `edit` into `admin`), so this repeats until nothing changes, as the controller's requeues do.
pub fn pending(cluster_roles: &[&Value]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut roles: Vec<(Option<&Map<String, Value>>, ClusterRole)> = cluster_roles
        .iter()
        .filter_map(|v| {
            let labels = v["metadata"]["labels"].as_object();
            Some((labels, serde_json::from_value((*v).clone()).ok()?))
        })
        .collect();
    roles.sort_by(|a, b| a.1.metadata.name.cmp(&b.1.metadata.name));
    let stored: Vec<Vec<PolicyRule>> = roles
        .iter()
        .map(|(_, r)| r.rules.clone().unwrap_or_default())
        .collect();
    for _ in 0..=roles.len() {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(selectors) = selectors(&roles[i].1) else {
                continue;
            };
            let mut rules: Vec<PolicyRule> = Vec::new();
            for (j, (labels, other)) in roles.iter().enumerate() {
                if j != i && selectors.iter().any(|s| s.matches(*labels)) {
                    for r in other.rules.iter().flatten() {
                        if !rules.contains(r) {
                            rules.push(r.clone());
                        }
                    }
                }
            }
            if roles[i].1.rules.as_deref().unwrap_or_default() != rules.as_slice() {
                roles[i].1.rules = Some(rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    roles
        .into_iter()
        .zip(stored)
        .filter(|((_, role), before)| {
            role.aggregation_rule.is_some()
                && role.rules.as_deref().unwrap_or_default() != before.as_slice()
        })
        .map(|((_, role), _)| {
            (
                role.metadata.name.unwrap_or_default(),
                role.rules.unwrap_or_default(),
            )
        })
        .collect()
}

fn selectors(role: &ClusterRole) -> Option<Vec<LabelSelector>> {
    let rule = role.aggregation_rule.as_ref()?;
    Some(
        rule.cluster_role_selectors
            .iter()
            .flatten()
            .filter_map(|s| LabelSelector::from_label_selector(&serde_json::to_value(s).ok()?).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selected_roles_rules_are_gathered_once() {
        let admin = json!({"metadata": {"name": "monitoring"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}});
        let a = json!({"metadata": {"name": "a", "labels": {"example.com/aggregate-to-monitoring": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        let b = json!({"metadata": {"name": "b", "labels": {"example.com/aggregate-to-monitoring": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]});
        let other = json!({"metadata": {"name": "c"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let out = pending(&[&admin, &a, &b, &other]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "monitoring");
        let resources: Vec<_> = out[0]
            .1
            .iter()
            .map(|r| r.resources.clone().unwrap()[0].clone())
            .collect();
        assert_eq!(resources, ["pods", "services"]);
        // Once stored, nothing is pending.
        let mut filled = admin.clone();
        filled["rules"] = serde_json::to_value(&out[0].1).unwrap();
        assert!(pending(&[&filled, &a, &b, &other]).is_empty());
    }
}
