//! The ResourceQuota admission plugin's arithmetic: what an object charges, which quotas cover
//! it (scopes), what a quota's namespace already uses, and the refusal kube-apiserver gives
//! when a new object would go over (`exceeded quota: …`, `failed quota: …: must specify …`).

use std::collections::BTreeSet;

use kinet_types::quantity::Quantity;
use kinet_types::Resource;
use serde_json::Value;

use crate::resources::{self, ResourceList};

/// The quota key counting objects of `resource`: `count/pods`, `count/deployments.apps`.
pub fn count_key(resource: &Resource) -> String {
    if resource.group.is_empty() {
        format!("count/{}", resource.plural)
    } else {
        format!("count/{}.{}", resource.plural, resource.group)
    }
}

/// Which resource's objects a quota key is charged by, as `(group, plural)`.
pub fn charged_by(key: &str) -> Option<(&str, &str)> {
    if let Some(counted) = key.strip_prefix("count/") {
        return Some(match counted.split_once('.') {
            Some((plural, group)) => (group, plural),
            None => ("", counted),
        });
    }
    if key.ends_with(".storageclass.storage.k8s.io/requests.storage")
        || key.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
    {
        return Some(("", "persistentvolumeclaims"));
    }
    Some(match key {
        "pods" | "cpu" | "memory" | "ephemeral-storage" => ("", "pods"),
        k if k.starts_with("requests.") && k != "requests.storage" => ("", "pods"),
        k if k.starts_with("limits.") => ("", "pods"),
        "services" | "services.nodeports" | "services.loadbalancers" => ("", "services"),
        "persistentvolumeclaims" | "requests.storage" => ("", "persistentvolumeclaims"),
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => ("", key),
        _ => return None,
    })
}

fn one() -> Quantity {
    Quantity::from_int(1)
}

/// What `obj` charges against quota. Every object counts under `count/…`; a pod that has
/// finished charges nothing else, as upstream does not quota compute past end of life.
pub fn usage(resource: &Resource, obj: &Value) -> ResourceList {
    let mut usage = ResourceList::from([(count_key(resource), one())]);
    match (resource.group, resource.plural) {
        ("", "pods") => pod_usage(obj, &mut usage),
        ("", "services") => service_usage(obj, &mut usage),
        ("", "persistentvolumeclaims") => claim_usage(obj, &mut usage),
        ("", p @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            usage.insert(p.to_string(), one());
        }
        _ => {}
    }
    usage
}

fn pod_usage(pod: &Value, usage: &mut ResourceList) {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return;
    }
    usage.insert("pods".into(), one());
    let (requests, limits) = resources::of_pod(pod);
    for (name, q) in requests {
        if matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            usage.insert(name.clone(), q);
        }
        usage.insert(format!("requests.{name}"), q);
    }
    for (name, q) in limits {
        usage.insert(format!("limits.{name}"), q);
    }
}

fn service_usage(svc: &Value, usage: &mut ResourceList) {
    usage.insert("services".into(), one());
    let ports = svc["spec"]["ports"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let count = |n: usize| Quantity::from_int(n as i64);
    match svc["spec"]["type"].as_str() {
        Some("NodePort") => {
            usage.insert("services.nodeports".into(), count(ports.len()));
        }
        Some("LoadBalancer") => {
            // Without node ports allocated, only those asked for explicitly count.
            let node_ports = if svc["spec"]["allocateLoadBalancerNodePorts"] == false {
                ports
                    .iter()
                    .filter(|p| p["nodePort"].as_i64().unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            usage.insert("services.nodeports".into(), count(node_ports));
            usage.insert("services.loadbalancers".into(), one());
        }
        _ => {}
    }
}

fn claim_usage(claim: &Value, usage: &mut ResourceList) {
    usage.insert("persistentvolumeclaims".into(), one());
    let storage = resources::list(&claim["spec"]["resources"]["requests"])
        .get("storage")
        .copied();
    if let Some(storage) = storage {
        usage.insert("requests.storage".into(), storage);
    }
    if let Some(class) = claim["spec"]["storageClassName"]
        .as_str()
        .filter(|c| !c.is_empty())
    {
        let prefix = format!("{class}.storageclass.storage.k8s.io");
        usage.insert(format!("{prefix}/persistentvolumeclaims"), one());
        if let Some(storage) = storage {
            usage.insert(format!("{prefix}/requests.storage"), storage);
        }
    }
}

fn is_best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|key| {
        pod["spec"][key].as_array().into_iter().flatten().all(|c| {
            let (requests, limits) = resources::of_container(c);
            requests.is_empty() && limits.is_empty()
        })
    })
}

/// Whether a pod falls in one of a quota's scopes (`Terminating`, `BestEffort`,
/// `PriorityClass`, … and their negations).
fn in_scope(pod: &Value, scope: &str, operator: &str, values: &[&str]) -> bool {
    let terminating = pod["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0);
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod["spec"]["priorityClassName"].as_str().unwrap_or("");
            match operator {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether `quota` covers `obj`: always without scopes; with scopes only pods, and only those
/// in every scope.
pub fn covers(quota: &Value, resource: &Resource, obj: &Value) -> bool {
    let spec = &quota["spec"];
    let mut scopes: Vec<(&str, &str, Vec<&str>)> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s, "Exists", Vec::new()))
        .collect();
    for e in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        scopes.push((
            e["scopeName"].as_str().unwrap_or(""),
            e["operator"].as_str().unwrap_or(""),
            values.collect(),
        ));
    }
    scopes.is_empty()
        || ((resource.group, resource.plural) == ("", "pods")
            && scopes
                .iter()
                .all(|(scope, op, values)| in_scope(obj, scope, op, values)))
}

/// The quota's hard limits (`spec.hard`).
pub fn hard(quota: &Value) -> ResourceList {
    resources::list(&quota["spec"]["hard"])
}

/// What a quota's namespace uses of each hard limit, over `objects` (every object there of
/// the resources the quota tracks): the quota's `status.used`.
pub fn used<'a>(
    quota: &Value,
    objects: impl IntoIterator<Item = (&'a Resource, &'a Value)>,
) -> ResourceList {
    let hard = hard(quota);
    let mut used = ResourceList::new();
    for (resource, obj) in objects {
        if covers(quota, resource, obj) {
            let charged = usage(resource, obj)
                .into_iter()
                .filter(|(k, _)| hard.contains_key(k))
                .collect();
            resources::add(&mut used, &charged);
        }
    }
    for k in hard.keys() {
        used.entry(k.clone()).or_insert_with(Quantity::zero);
    }
    used
}

/// What a write does to one quota, as kube-apiserver's quota admission decides it from the
/// quota's kept `status.used`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// The quota does not cover the object, or the write adds nothing it limits.
    Free,
    /// The quota's `status.used` once the write is charged.
    Used(ResourceList),
    /// The text after kube-apiserver's `<resource> "<name>" is forbidden: `.
    Refused(String),
    /// `status.used` lacks these keys (the quota's status is not computed yet).
    Unknown(Vec<String>),
}

/// What a write of `obj` over `old` (None: a create) asks of `quota`'s limits: the new usage
/// less the old, only what grows, as upstream's evaluators charge an update.
fn requested(quota: &Value, resource: &Resource, obj: &Value, old: Option<&Value>) -> ResourceList {
    let hard = hard(quota);
    let before = old
        .filter(|o| covers(quota, resource, o))
        .map(|o| usage(resource, o))
        .unwrap_or_default();
    usage(resource, obj)
        .into_iter()
        .filter(|(k, _)| hard.contains_key(k))
        .map(|(k, q)| {
            let grown = before.get(&k).map_or(q, |b| q.minus(*b));
            (k, grown)
        })
        .filter(|(_, q)| !q.is_zero() && !q.is_negative())
        .collect()
}

/// Charges a write of `obj` (over `old` on update) against `quota`'s `status.used`.
pub fn charge(quota: &Value, resource: &Resource, obj: &Value, old: Option<&Value>) -> Charge {
    if !covers(quota, resource, obj) {
        return Charge::Free;
    }
    let name = quota["metadata"]["name"].as_str().unwrap_or_default();
    let hard = hard(quota);
    if (resource.group, resource.plural) == ("", "pods") && old.is_none() {
        if let Some(missing) = unspecified(obj, &hard) {
            return Charge::Refused(format!("failed quota: {name}: must specify {missing}"));
        }
    }
    let requested = requested(quota, resource, obj, old);
    if requested.is_empty() {
        return Charge::Free;
    }
    let used = resources::list(&quota["status"]["used"]);
    let unknown: Vec<String> = requested
        .keys()
        .filter(|k| !used.contains_key(*k))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Charge::Unknown(unknown);
    }
    let exceeded: Vec<&String> = requested
        .iter()
        .filter(|(k, q)| used[*k].plus(**q) > hard[*k])
        .map(|(k, _)| k)
        .collect();
    if exceeded.is_empty() {
        let mut next = used;
        resources::add(&mut next, &requested);
        return Charge::Used(next);
    }
    let show = |list: &ResourceList| {
        exceeded
            .iter()
            .map(|k| {
                format!(
                    "{k}={}",
                    list.get(*k).copied().unwrap_or_else(Quantity::zero)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    Charge::Refused(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        show(&requested),
        show(&used),
        show(&hard)
    ))
}

/// kube-apiserver's refusal while a quota's usage of `keys` is not yet computed.
pub fn unknown_status(quota: &Value, keys: &[String]) -> String {
    let name = quota["metadata"]["name"].as_str().unwrap_or_default();
    format!(
        "status unknown for quota: {name}, resources: {}",
        keys.join(",")
    )
}

/// A quota on cpu or memory requires every container to name it (a historical rule kept
/// upstream): "limits.cpu for: a,b; requests.memory for: a".
fn unspecified(pod: &Value, hard: &ResourceList) -> Option<String> {
    const CHECKED: [&str; 6] = [
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    let required: Vec<&str> = CHECKED
        .into_iter()
        .filter(|k| hard.contains_key(*k))
        .collect();
    let mut missing: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for key in ["containers", "initContainers"] {
        for c in pod["spec"][key].as_array().into_iter().flatten() {
            let (requests, limits) = resources::of_container(c);
            for r in &required {
                let named = match r.split_once('.') {
                    Some(("limits", n)) => limits.contains_key(n),
                    Some((_, n)) => requests.contains_key(n),
                    None => requests.contains_key(*r),
                };
                if !named {
                    missing
                        .entry(r)
                        .or_default()
                        .insert(c["name"].as_str().unwrap_or_default());
                }
            }
        }
    }
    (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().copied().collect::<Vec<_>>().join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests;
