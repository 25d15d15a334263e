//! Resource lists (`{"cpu": "100m", "memory": "1Gi"}`) and a pod's effective requests and
//! limits, which LimitRanger and ResourceQuota both read.

use std::collections::BTreeMap;

use kinet_types::quantity::Quantity;
use serde_json::Value;

pub type ResourceList = BTreeMap<String, Quantity>;

/// The quantities of a JSON resource list; values that do not parse were refused by validation.
pub fn list(v: &Value) -> ResourceList {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?)?)))
        .collect()
}

/// A container's requests and limits.
pub fn of_container(c: &Value) -> (ResourceList, ResourceList) {
    let r = &c["resources"];
    (list(&r["requests"]), list(&r["limits"]))
}

/// What the pod asks for as a whole: the sum over its containers, raised to any init
/// container's value that is more (init containers run one at a time, before the others).
pub fn of_pod(pod: &Value) -> (ResourceList, ResourceList) {
    let spec = &pod["spec"];
    let (mut requests, mut limits) = (ResourceList::new(), ResourceList::new());
    for c in spec["containers"].as_array().into_iter().flatten() {
        let (r, l) = of_container(c);
        add(&mut requests, &r);
        add(&mut limits, &l);
    }
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let (r, l) = of_container(init);
        raise(&mut requests, &r);
        raise(&mut limits, &l);
    }
    (requests, limits)
}

/// Adds `other` into `total`, name by name.
pub fn add(total: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        let sum = total.get(name).map_or(*q, |have| have.plus(*q));
        total.insert(name.clone(), sum);
    }
}

fn raise(total: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        match total.get(name) {
            Some(have) if have >= q => {}
            _ => {
                total.insert(name.clone(), *q);
            }
        }
    }
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one message alone, several in brackets, each
/// only once.
pub fn aggregate(mut errors: Vec<String>) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    errors.retain(|e| seen.insert(e.clone()));
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(format!("[{}]", errors.join(", "))),
    }
}
