//! The LimitRanger admission plugin: a namespace's LimitRanges give new Pods' containers their
//! default requests and limits, then bound Pods, containers and PersistentVolumeClaims by min,
//! max and limit-to-request ratio, with kube-apiserver's messages.

use serde_json::{json, Value};

use crate::json::ensure;
use crate::resources::{self, aggregate, ResourceList};
use kinet_types::quantity::Quantity;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Default values by resource name, in the range's order.
type Defaults = Vec<(String, Value)>;

/// Gives the containers of a new pod the defaults of each range, and records what was set
/// in the `kubernetes.io/limit-ranger` annotation. Pod updates are left alone: containers'
/// resources cannot change.
pub fn default_pod(pod: &mut Value, ranges: &[&Value]) {
    for range in ranges {
        let (requests, limits) = container_defaults(range);
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        let mut notes = Vec::new();
        for (key, kind) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(containers) = pod["spec"][key].as_array_mut() else {
                continue;
            };
            for c in containers {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                let Some(c) = c.as_object_mut() else { continue };
                let res = ensure(c, "resources");
                let set_limits = fill(ensure(res, "limits"), &limits);
                let set_requests = fill(ensure(res, "requests"), &requests);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {kind} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!("{} limit for {kind} {name}", set_limits.join(", ")));
                }
            }
        }
        if !notes.is_empty() {
            let annotations = ensure(ensure(pod_obj(pod), "metadata"), "annotations");
            annotations.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
}

fn pod_obj(pod: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !pod.is_object() {
        *pod = json!({});
    }
    pod.as_object_mut().expect("an object")
}

/// The `default` (limits) and `defaultRequest` (requests) of a range's Container items.
fn container_defaults(range: &Value) -> (Defaults, Defaults) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for item in items(range).filter(|i| i["type"] == "Container") {
        let pairs = |v: &Value| {
            v.as_object()
                .into_iter()
                .flatten()
                .map(|(k, q)| (k.clone(), q.clone()))
                .collect::<Vec<_>>()
        };
        requests.extend(pairs(&item["defaultRequest"]));
        limits.extend(pairs(&item["default"]));
    }
    (requests, limits)
}

/// Sets each absent name; returns the names set, sorted.
fn fill(list: &mut serde_json::Map<String, Value>, defaults: &Defaults) -> Vec<String> {
    let mut set = Vec::new();
    for (name, value) in defaults {
        if !list.contains_key(name) {
            list.insert(name.clone(), value.clone());
            set.push(name.clone());
        }
    }
    set.sort();
    set
}

fn items(range: &Value) -> impl Iterator<Item = &Value> {
    range["spec"]["limits"].as_array().into_iter().flatten()
}

/// Checks a (defaulted) pod against one range: why it is refused, as Go's aggregate prints it.
pub fn check_pod(pod: &Value, range: &Value) -> Option<String> {
    let mut errors = Vec::new();
    for item in items(range) {
        match item["type"].as_str() {
            Some("Container") => {
                for key in ["containers", "initContainers"] {
                    for c in pod["spec"][key].as_array().into_iter().flatten() {
                        let (requests, limits) = resources::of_container(c);
                        bounds(item, "Container", &requests, &limits, &mut errors);
                    }
                }
            }
            Some("Pod") => {
                let (requests, limits) = resources::of_pod(pod);
                bounds(item, "Pod", &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    aggregate(errors)
}

/// Checks a new claim's storage request against one range's PersistentVolumeClaim items.
pub fn check_claim(claim: &Value, range: &Value) -> Option<String> {
    let requests = resources::list(&claim["spec"]["resources"]["requests"]);
    let mut errors = Vec::new();
    let kind = "PersistentVolumeClaim";
    for item in items(range).filter(|i| i["type"] == kind) {
        for (name, min) in resources::list(&item["min"]) {
            errors.extend(minimum(kind, &name, min, &requests, &ResourceList::new()));
        }
        for (name, max) in resources::list(&item["max"]) {
            errors.extend(match requests.get(&name) {
                None => Some(format!(
                    "maximum {name} usage per {kind} is {max}.  No request is specified"
                )),
                Some(r) if *r > max => Some(format!(
                    "maximum {name} usage per {kind} is {max}, but request is {r}"
                )),
                Some(_) => None,
            });
        }
    }
    aggregate(errors)
}

fn bounds(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, min) in resources::list(&item["min"]) {
        errors.extend(minimum(kind, &name, min, requests, limits));
    }
    for (name, max) in resources::list(&item["max"]) {
        errors.extend(maximum(kind, &name, max, requests, limits));
    }
    for (name, ratio) in resources::list(&item["maxLimitRequestRatio"]) {
        errors.extend(limit_to_request(kind, &name, ratio, requests, limits));
    }
}

fn minimum(
    kind: &str,
    name: &str,
    min: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(request) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {min}.  No request is specified"
        ));
    };
    if *request < min {
        return Some(format!(
            "minimum {name} usage per {kind} is {min}, but request is {request}"
        ));
    }
    match limits.get(name) {
        Some(limit) if *limit < min => Some(format!(
            "minimum {name} usage per {kind} is {min}, but limit is {limit}"
        )),
        _ => None,
    }
}

fn maximum(
    kind: &str,
    name: &str,
    max: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(limit) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {max}.  No limit is specified"
        ));
    };
    if *limit > max {
        return Some(format!(
            "maximum {name} usage per {kind} is {max}, but limit is {limit}"
        ));
    }
    match requests.get(name) {
        Some(request) if *request > max => Some(format!(
            "maximum {name} usage per {kind} is {max}, but request is {request}"
        )),
        _ => None,
    }
}

fn limit_to_request(
    kind: &str,
    name: &str,
    ratio: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let request = requests.get(name).filter(|q| !q.is_zero());
    let limit = limits.get(name).filter(|q| !q.is_zero());
    let Some(request) = request else {
        return Some(format!("{name} max limit to request ratio per {kind} is {ratio}, but no request is specified or request is 0"));
    };
    let Some(limit) = limit else {
        return Some(format!("{name} max limit to request ratio per {kind} is {ratio}, but no limit is specified or limit is 0"));
    };
    // Compared in thousandths, as Go does for values that fit.
    let observed = limit.milli() as f64 / request.milli() as f64;
    (observed * 1000.0 > ratio.milli() as f64).then(|| {
        format!("{name} max limit to request ratio per {kind} is {ratio}, but provided ratio is {observed:.6}")
    })
}

#[cfg(test)]
mod tests;
