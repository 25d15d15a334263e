//! Rows for apps/v1 workloads and the networking, discovery and coordination kinds.

use chrono::{DateTime, Utc};
use kinet_selectors::LabelSelector;
use serde_json::{json, Value};

use crate::core::{lb_ingress, template_containers};
use crate::duration::human_age;
use crate::util::{
    arr_at, at, created, format_label_selector, format_labels, int_at, list_with_more, name, str_at,
};

pub(crate) fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(human_age(created(obj), now))
}

/// `spec.replicas`, which the apiserver defaults to 1.
fn desired(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(crate) fn deployment(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(d);
    // Deployments print the selector's String() directly: "" when it selects everything.
    let selector = match LabelSelector::from_label_selector(
        at(d, &["spec", "selector"]).unwrap_or(&Value::Null),
    ) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_string(),
    };
    vec![
        json!(name(d)),
        json!(format!(
            "{}/{}",
            int_at(d, &["status", "readyReplicas"]),
            desired(d)
        )),
        json!(int_at(d, &["status", "updatedReplicas"])),
        json!(int_at(d, &["status", "availableReplicas"])),
        age(d, now),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

pub(crate) fn replica_set(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(rs);
    vec![
        json!(name(rs)),
        json!(desired(rs)),
        json!(int_at(rs, &["status", "replicas"])),
        json!(int_at(rs, &["status", "readyReplicas"])),
        age(rs, now),
        json!(names),
        json!(images),
        json!(format_label_selector(at(rs, &["spec", "selector"]))),
    ]
}

pub(crate) fn daemon_set(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(ds);
    let status = |k: &str| json!(int_at(ds, &["status", k]));
    vec![
        json!(name(ds)),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        json!(format_labels(
            at(ds, &["spec", "template", "spec", "nodeSelector"]).and_then(Value::as_object)
        )),
        age(ds, now),
        json!(names),
        json!(images),
        json!(format_label_selector(at(ds, &["spec", "selector"]))),
    ]
}

pub(crate) fn endpoint_slice(es: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports: Vec<String> = arr_at(es, &["ports"])
        .iter()
        .map(|p| {
            match (
                at(p, &["port"]).and_then(Value::as_i64),
                at(p, &["name"]).and_then(Value::as_str),
            ) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addrs: Vec<String> = arr_at(es, &["endpoints"])
        .iter()
        .flat_map(|e| {
            arr_at(e, &["addresses"])
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    vec![
        json!(name(es)),
        json!(str_at(es, &["addressType"])),
        json!(list_with_more(&ports, 3)),
        json!(list_with_more(&addrs, 3)),
        age(es, now),
    ]
}

pub(crate) fn lease(l: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(l)),
        json!(str_at(l, &["spec", "holderIdentity"])),
        age(l, now),
    ]
}

/// `formatHosts`: up to three rule hosts, `*` when none.
fn ingress_hosts(ing: &Value) -> String {
    let rules = arr_at(ing, &["spec", "rules"]);
    let max = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == max {
            more = true;
        }
        let host = str_at(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - max)
    } else {
        ret
    }
}

pub(crate) fn ingress(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = at(ing, &["spec", "ingressClassName"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let ports = if arr_at(ing, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(name(ing)),
        json!(class),
        json!(ingress_hosts(ing)),
        json!(lb_ingress(at(ing, &["status", "loadBalancer"]))),
        json!(ports),
        age(ing, now),
    ]
}

pub(crate) fn ingress_class(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match at(ic, &["spec", "parameters"]).filter(|p| !p.is_null()) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut s = str_at(p, &["kind"]).to_string();
            if let Some(group) = at(p, &["apiGroup"]).and_then(Value::as_str) {
                s = format!("{s}.{group}");
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
    };
    vec![
        json!(name(ic)),
        json!(str_at(ic, &["spec", "controller"])),
        json!(parameters),
        age(ic, now),
    ]
}

pub(crate) fn network_policy(np: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // podSelector is a struct, not a pointer: absent means `{}`, which selects every pod.
    let empty = json!({});
    let sel = at(np, &["spec", "podSelector"])
        .filter(|s| !s.is_null())
        .unwrap_or(&empty);
    vec![
        json!(name(np)),
        json!(format_label_selector(Some(sel))),
        age(np, now),
    ]
}
