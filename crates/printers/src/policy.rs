//! Rows for the kinds that bound and order workloads (printers.go `printResourceQuota`,
//! `printPodDisruptionBudget`, `printPriorityClass`, `printControllerRevision`,
//! `printValidatingWebhook`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::duration::human_age;
use crate::util::{arr_at, at, created, int_at, len_at, name, str_at};

/// `used/hard` per resource, sorted by name; `limits.*` in the LIMIT cell, the rest in REQUEST.
pub(crate) fn resource_quota(q: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let hard = at(q, &["status", "hard"]).and_then(Value::as_object);
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (resource, quantity) in hard.into_iter().flatten() {
        let used = str_at(q, &["status", "used", resource]);
        let used = if used.is_empty() { "0" } else { used };
        let cell = format!(
            "{resource}: {used}/{}",
            quantity.as_str().unwrap_or_default()
        );
        if resource.split('.').next() == Some("limits") && resource.contains('.') {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    vec![
        json!(name(q)),
        json!(human_age(created(q), now)),
        json!(request.join(", ")),
        json!(limit.join(", ")),
    ]
}

/// An IntOrString cell, or "N/A" when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

pub(crate) fn pod_disruption_budget(pdb: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(pdb)),
        json!(int_or_string(at(pdb, &["spec", "minAvailable"]))),
        json!(int_or_string(at(pdb, &["spec", "maxUnavailable"]))),
        json!(int_at(pdb, &["status", "disruptionsAllowed"])),
        json!(human_age(created(pdb), now)),
    ]
}

pub(crate) fn priority_class(pc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let policy = at(pc, &["preemptionPolicy"])
        .and_then(Value::as_str)
        .unwrap_or("PreemptLowerPriority");
    vec![
        json!(name(pc)),
        json!(int_at(pc, &["value"])),
        json!(at(pc, &["globalDefault"])
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        json!(human_age(created(pc), now)),
        json!(policy),
    ]
}

/// CONTROLLER is the owning controller as `<kind>.<group>/<name>`, lower-case, as kubectl
/// names resources.
pub(crate) fn controller_revision(cr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = arr_at(cr, &["metadata", "ownerReferences"])
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            let group = o["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .rsplit_once('/')
                .map_or("", |(g, _)| g);
            let kind = o["kind"].as_str().unwrap_or_default().to_lowercase();
            let kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{kind}/{}", o["name"].as_str().unwrap_or_default())
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(name(cr)),
        json!(controller),
        json!(int_at(cr, &["revision"])),
        json!(human_age(created(cr), now)),
    ]
}

/// Validating and mutating webhook configurations: how many webhooks each holds.
pub(crate) fn webhook_configuration(wc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(wc)),
        json!(len_at(wc, &["webhooks"])),
        json!(human_age(created(wc), now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn quota_cells_split_requests_from_limits() {
        let q = json!({"metadata": {"name": "compute", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"hard": {"limits.cpu": "2", "pods": "10", "requests.cpu": "1"},
                       "used": {"limits.cpu": "500m", "pods": "2", "requests.cpu": "250m"}}});
        assert_eq!(
            resource_quota(&q, now()),
            vec![
                json!("compute"),
                json!("10m"),
                json!("pods: 2/10, requests.cpu: 250m/1"),
                json!("limits.cpu: 500m/2")
            ]
        );
    }

    #[test]
    fn budgets_classes_revisions_and_webhooks() {
        let pdb = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            pod_disruption_budget(&pdb, now()),
            vec![
                json!("web"),
                json!("2"),
                json!("N/A"),
                json!(1),
                json!("10m")
            ]
        );
        let pc = json!({"metadata": {"name": "low", "creationTimestamp": "2026-01-01T00:00:00Z"}, "value": -5});
        assert_eq!(
            priority_class(&pc, now()),
            vec![
                json!("low"),
                json!(-5),
                json!(false),
                json!("10m"),
                json!("PreemptLowerPriority")
            ]
        );
        let cr = json!({"metadata": {"name": "web-7d", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2});
        assert_eq!(
            controller_revision(&cr, now()),
            vec![
                json!("web-7d"),
                json!("statefulset.apps/web"),
                json!(2),
                json!("10m")
            ]
        );
        let wc = json!({"metadata": {"name": "hooks", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "webhooks": [{}, {}]});
        assert_eq!(
            webhook_configuration(&wc, now()),
            vec![json!("hooks"), json!(2), json!("10m")]
        );
    }
}
