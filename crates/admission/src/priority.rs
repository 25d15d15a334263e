//! The Priority admission plugin: a new pod's `priorityClassName` (or the cluster's
//! `globalDefault` class) decides its `priority` and `preemptionPolicy`, and the two built-in
//! classes exist from the start, as kube-apiserver makes them.

use serde_json::{json, Value};

/// The built-in PriorityClasses: name, value, description.
const SYSTEM: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const PREEMPT: &str = "PreemptLowerPriority";

/// The PriorityClass objects kube-apiserver creates at start.
pub fn system_classes() -> Vec<Value> {
    SYSTEM
        .iter()
        .map(|(name, value, description)| {
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
                "preemptionPolicy": PREEMPT})
        })
        .collect()
}

/// Resolves a new pod's priority from `classes` (every stored PriorityClass), or says why the
/// pod is refused, in the plugin's words.
pub fn admit(pod: &mut Value, classes: &[&Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let class = if named.is_empty() {
        classes.iter().find(|c| c["globalDefault"] == true)
    } else {
        let found = classes
            .iter()
            .find(|c| c["metadata"]["name"] == named.as_str());
        Some(found.ok_or_else(|| format!("no PriorityClass with name {named} was found"))?)
    };
    let (name, value, policy) = match class {
        Some(c) => (
            c["metadata"]["name"].as_str().unwrap_or_default(),
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"].as_str().unwrap_or(PREEMPT),
        ),
        None => ("", 0, PREEMPT),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"));
        }
    }
    if !name.is_empty() {
        spec.insert("priorityClassName".into(), json!(name));
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn classes_decide_priority_and_unknown_ones_are_refused() {
        let system = system_classes();
        let low = json!({"metadata": {"name": "low"}, "value": -5, "preemptionPolicy": "Never"});
        let mut classes: Vec<&Value> = system.iter().collect();
        classes.push(&low);

        let mut p = pod(json!({"priorityClassName": "system-node-critical"}));
        admit(&mut p, &classes).unwrap();
        assert_eq!(p["spec"]["priority"], 2_000_001_000);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");

        let mut p = pod(json!({"priorityClassName": "low"}));
        admit(&mut p, &classes).unwrap();
        assert_eq!(
            (&p["spec"]["priority"], &p["spec"]["preemptionPolicy"]),
            (&json!(-5), &json!("Never"))
        );

        let mut p = pod(json!({}));
        admit(&mut p, &classes).unwrap();
        assert_eq!(
            p["spec"],
            json!({"priority": 0, "preemptionPolicy": "PreemptLowerPriority"})
        );

        let mut p = pod(json!({"priorityClassName": "gold"}));
        assert_eq!(
            admit(&mut p, &classes).unwrap_err(),
            "no PriorityClass with name gold was found"
        );
        let mut p = pod(json!({"priorityClassName": "low", "priority": 7}));
        assert_eq!(
            admit(&mut p, &classes).unwrap_err(),
            "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed -5 from the given PriorityClass name"
        );
    }

    #[test]
    fn a_global_default_class_names_pods_without_one() {
        let default = json!({"metadata": {"name": "normal"}, "value": 100, "globalDefault": true});
        let mut p = pod(json!({}));
        admit(&mut p, &[&default]).unwrap();
        assert_eq!(p["spec"]["priorityClassName"], "normal");
        assert_eq!(p["spec"]["priority"], 100);
    }
}
