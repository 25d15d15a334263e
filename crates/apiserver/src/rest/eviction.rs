//! `POST pods/<name>/eviction` (policy/v1 and v1beta1 Eviction), as kube-apiserver's eviction
//! REST (`pkg/registry/core/pod/storage/eviction.go`): a pod that is not running yet, or no
//! longer, is deleted at once; otherwise the one PodDisruptionBudget selecting it must allow a
//! disruption, which is taken (a compare-and-swap on the budget's status, recording the pod in
//! `disruptedPods` for the disruption controller) before the pod is deleted with the
//! Eviction's `deleteOptions`.

use kinet_selectors::LabelSelector;
use kinet_store::Mutation;
use kinet_types::registry::{lookup, Resource};
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::delete::DeleteOptions;
use super::{collection_prefix, meta, object_key, Api, Call};
use crate::http::{json_reply, Reply};

/// More pods than this waiting in `disruptedPods` and the budget takes no more evictions.
const MAX_DISRUPTED_PODS: usize = 2000;

/// How often a pod that changed while it was looked at is looked at again.
const EVICTION_ATTEMPTS: usize = 5;

/// The one message kubectl drain prints while it waits on a budget.
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn budgets() -> &'static Resource {
    lookup("policy", "v1", "poddisruptionbudgets").expect("budgets are served")
}

/// Pending, finished or already deleting: evicting it disrupts nothing more (`canIgnorePDB`).
pub(crate) fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod["metadata"]["deletionTimestamp"].is_string()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `budget` selects `pod`; an empty or missing selector selects nothing here.
pub(crate) fn selects(budget: &Value, pod: &Value) -> bool {
    let selector = &budget["spec"]["selector"];
    let empty = |k: &str| {
        selector[k].as_object().is_none_or(|m| m.is_empty())
            && selector[k].as_array().is_none_or(|a| a.is_empty())
    };
    if selector.is_null() || (empty("matchLabels") && empty("matchExpressions")) {
        return false;
    }
    LabelSelector::from_label_selector(selector)
        .is_ok_and(|s| s.matches(pod["metadata"]["labels"].as_object()))
}

/// What the budget lets the eviction of a not-ready pod do without taking a disruption.
fn unhealthy_pod_goes_free(budget: &Value, pod: &Value) -> bool {
    if ready(pod) {
        return false;
    }
    let status = &budget["status"];
    let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        || (healthy >= desired && desired > 0)
}

fn refused(name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "poddisruptionbudget.policy {name:?} is forbidden: {why}"
    ));
    e.details = Some(json!({"name": name, "group": "policy", "kind": "poddisruptionbudget"}));
    e
}

/// The budget after one disruption is taken for `pod` at `now` (`checkAndDecrement`), or why
/// it cannot be.
pub(crate) fn take_disruption(budget: &Value, pod: &str, now: &str) -> Result<Value> {
    let name = budget["metadata"]["name"].as_str().unwrap_or_default();
    let status = &budget["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed < budget["metadata"]["generation"].as_i64().unwrap_or(0) {
        let cause = format!("The disruption budget {name} is still being processed by the server.");
        return Err(ApiError::too_many_requests(
            VIOLATION,
            10,
            json!([{"reason": "DisruptionBudget", "message": cause}]),
        ));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(refused(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = status["disruptedPods"].as_object();
    if disrupted.is_some_and(|d| d.len() > MAX_DISRUPTED_PODS) {
        return Err(refused(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        let cause = format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            status["desiredHealthy"].as_i64().unwrap_or(0),
            status["currentHealthy"].as_i64().unwrap_or(0)
        );
        return Err(ApiError::too_many_requests(
            VIOLATION,
            0,
            json!([{"reason": "DisruptionBudget", "message": cause}]),
        ));
    }
    let mut budget = budget.clone();
    let status = &mut budget["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod] = json!(now);
    if allowed == 1 {
        set_disallowed(status, now);
    }
    Ok(budget)
}

/// `UpdateDisruptionAllowedCondition` once no disruption is left.
fn set_disallowed(status: &mut Value, now: &str) {
    let generation = status["observedGeneration"].clone();
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let since = conditions
        .iter()
        .find(|c| c["type"] == "DisruptionAllowed" && c["status"] == "False")
        .map_or(json!(now), |c| c["lastTransitionTime"].clone());
    conditions.retain(|c| c["type"] != "DisruptionAllowed");
    conditions.push(json!({"type": "DisruptionAllowed", "status": "False",
        "reason": "InsufficientPods", "message": "", "observedGeneration": generation,
        "lastTransitionTime": since}));
    status["conditions"] = json!(conditions);
}

impl Api {
    pub(super) async fn evict(&self, call: &Call, body: &[u8]) -> Result<Reply> {
        let pods = call.resource();
        let (eviction, _) = super::parse_object(&call.content_type, body)?;
        let name = call.name().to_string();
        if eviction["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n != name)
        {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let opts = DeleteOptions::from_value(&eviction["deleteOptions"], call)?;
        let ns = call.namespace().unwrap_or_default();
        for _ in 0..EVICTION_ATTEMPTS {
            let pod = self
                .store
                .get(&call.key())
                .ok_or_else(|| ApiError::not_found(pods, &name))?;
            // Deleted only as it was seen when no disruption was taken for it: a pod that
            // turned ready meanwhile is looked at again.
            let mut as_seen = can_ignore_budget(&pod.value);
            if !as_seen {
                let (all, _) = self.store.list(&collection_prefix(budgets(), Some(ns)));
                let selecting: Vec<&Value> = all
                    .iter()
                    .map(|b| &b.value)
                    .filter(|b| selects(b, &pod.value))
                    .collect();
                match selecting.as_slice() {
                    [] => {}
                    [budget] if unhealthy_pod_goes_free(budget, &pod.value) => as_seen = true,
                    [budget] => self.take_disruption(budget, &name, opts.dry_run).await?,
                    _ => {
                        return Err(ApiError::new(500, "InternalError",
                            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
                    }
                }
            }
            let mut attempt = opts.clone();
            if as_seen {
                attempt.rv.get_or_insert_with(|| pod.rv.to_string());
            }
            match self.delete_one(pods, call.key(), &name, &attempt).await {
                Err(e) if e.code == 409 && as_seen && opts.rv.is_none() => continue,
                Err(e) => return Err(e),
                Ok(_) => {
                    return Ok(json_reply(
                        201,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    ))
                }
            }
        }
        Err(ApiError::conflict(pods, &name))
    }

    /// Takes one disruption of the budget for `pod`, over the budget as stored now.
    async fn take_disruption(&self, budget: &Value, pod: &str, dry_run: bool) -> Result<()> {
        let now = meta::now();
        if dry_run {
            return take_disruption(budget, pod, &now).map(drop);
        }
        let ns = budget["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = budget["metadata"]["name"].as_str().unwrap_or_default();
        let key = object_key(budgets(), Some(ns), name);
        let (pod, missing) = (pod.to_string(), name.to_string());
        self.store
            .write(&key, move |current| {
                let current = current.ok_or_else(|| ApiError::not_found(budgets(), &missing))?;
                let taken = take_disruption(current, &pod, &now)?;
                Ok(Mutation::Put(super::stored_form(budgets(), taken)?))
            })
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(allowed: i64, healthy: i64, desired: i64) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
                "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": 3,
                "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                    "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}})
    }

    fn pod(phase: &str, ready: bool) -> Value {
        json!({"metadata": {"name": "web-1", "labels": {"app": "web"}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn a_disruption_is_taken_and_recorded() {
        let now = "2025-01-10T12:00:00Z";
        let b = take_disruption(&budget(2, 3, 1), "web-1", now).unwrap();
        assert_eq!(b["status"]["disruptionsAllowed"], 1);
        assert_eq!(b["status"]["disruptedPods"]["web-1"], now);
        assert_eq!(b["status"]["conditions"][0]["status"], "True");
        let last = take_disruption(&b, "web-2", now).unwrap();
        assert_eq!(last["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            last["status"]["disruptedPods"].as_object().unwrap().len(),
            2
        );
        let c = &last["status"]["conditions"][0];
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("InsufficientPods"))
        );
        assert_eq!(c["lastTransitionTime"], now);
    }

    #[test]
    fn a_spent_budget_refuses_with_kubes_status() {
        let e = take_disruption(&budget(0, 2, 2), "web-1", "t").unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, VIOLATION);
        let details = e.details.unwrap();
        assert_eq!(
            details,
            json!({"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]})
        );
        let mut stale = budget(1, 3, 2);
        stale["metadata"]["generation"] = json!(2);
        let e = take_disruption(&stale, "web-1", "t").unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.details.unwrap()["retryAfterSeconds"], 10);
        let e = take_disruption(&budget(-1, 0, 2), "web-1", "t").unwrap_err();
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn which_pods_and_budgets_count() {
        assert!(can_ignore_budget(&pod("Pending", false)));
        assert!(can_ignore_budget(&pod("Succeeded", false)));
        assert!(!can_ignore_budget(&pod("Running", true)));
        let mut going = pod("Running", true);
        going["metadata"]["deletionTimestamp"] = json!("2025-01-10T12:00:00Z");
        assert!(can_ignore_budget(&going));

        let b = budget(0, 2, 2);
        assert!(selects(&b, &pod("Running", true)));
        let mut other = pod("Running", true);
        other["metadata"]["labels"] = json!({"app": "db"});
        assert!(!selects(&b, &other));
        let mut everything = b.clone();
        everything["spec"]["selector"] = json!({});
        assert!(
            !selects(&everything, &pod("Running", true)),
            "an empty selector selects nothing here"
        );

        // A not-ready pod goes without a disruption while the budget is met.
        assert!(unhealthy_pod_goes_free(
            &budget(0, 2, 2),
            &pod("Running", false)
        ));
        assert!(!unhealthy_pod_goes_free(
            &budget(0, 1, 2),
            &pod("Running", false)
        ));
        assert!(!unhealthy_pod_goes_free(
            &budget(0, 2, 2),
            &pod("Running", true)
        ));
        let mut always = budget(0, 1, 2);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(unhealthy_pod_goes_free(&always, &pod("Running", false)));
    }
}
