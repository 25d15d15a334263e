//! Rows for core/v1 kinds other than pods: services, endpoints, nodes, namespaces, config maps,
//! secrets, service accounts, events and persistent volume claims.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::duration::{human_age, parse_time, since};
use crate::util::{
    arr_at, at, container_cells, created, format_labels, int_at, len_at, name, str_at,
};

fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(human_age(created(obj), now))
}

/// Load-balancer ingress points: IPs or hostnames, sorted and deduplicated. The apiserver
/// prints tables wide, so they are never clipped.
pub(crate) fn lb_ingress(status: Option<&Value>) -> String {
    let mut out: Vec<String> = status
        .map(|s| arr_at(s, &["ingress"]))
        .unwrap_or_default()
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            [ip, host]
                .into_iter()
                .find(|s| !s.is_empty())
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out.dedup();
    out.join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr_at(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let lb = lb_ingress(at(svc, &["status", "loadBalancer"]));
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let proto = match str_at(p, &["protocol"]) {
                "" => "TCP", // the apiserver defaults it
                other => other,
            };
            match int_at(p, &["nodePort"]) {
                n if n > 0 => format!("{}:{n}/{proto}", int_at(p, &["port"])),
                _ => format!("{}/{proto}", int_at(p, &["port"])),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

pub(crate) fn service(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| at(svc, &["spec", "clusterIP"]).and_then(Value::as_str))
        .unwrap_or("<none>");
    vec![
        json!(name(svc)),
        json!(str_at(svc, &["spec", "type"])),
        json!(cluster_ip),
        json!(service_external_ip(svc)),
        json!(service_ports(svc)),
        age(svc, now),
        json!(format_labels(
            at(svc, &["spec", "selector"]).and_then(Value::as_object)
        )),
    ]
}

/// `formatEndpoints`: up to three `ip:port` pairs, then `+ N more...`.
fn endpoints_list(ep: &Value) -> String {
    let subsets = arr_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs: Vec<&str> = arr_at(ss, &["addresses"])
            .iter()
            .map(|a| str_at(a, &["ip"]))
            .collect();
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addrs.len();
            list.extend(
                addrs
                    .iter()
                    .take(max - list.len().min(max))
                    .map(|a| a.to_string()),
            );
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in &addrs {
                if list.len() == max {
                    break;
                }
                let port = int_at(p, &["port"]);
                // net.JoinHostPort brackets IPv6 addresses.
                list.push(if a.contains(':') {
                    format!("[{a}]:{port}")
                } else {
                    format!("{a}:{port}")
                });
            }
        }
    }
    let ret = list.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else {
        ret
    }
}

pub(crate) fn endpoints(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![json!(name(ep)), json!(endpoints_list(ep)), age(ep, now)]
}

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
                roles.push(v.as_str().unwrap_or_default().to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    }
}

fn node_address(node: &Value, ty: &str) -> String {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == ty)
        .map(|a| str_at(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

pub(crate) fn node(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |k: &str| match str_at(node, &["status", "nodeInfo", k]) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(node_roles(node)),
        age(node, now),
        json!(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

pub(crate) fn namespace(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(ns)),
        json!(str_at(ns, &["status", "phase"])),
        age(ns, now),
    ]
}

pub(crate) fn config_map(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(cm)),
        json!(len_at(cm, &["data"]) + len_at(cm, &["binaryData"])),
        age(cm, now),
    ]
}

pub(crate) fn secret(s: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(s)),
        json!(str_at(s, &["type"])),
        json!(len_at(s, &["data"])),
        age(s, now),
    ]
}

pub(crate) fn service_account(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(sa)),
        json!(len_at(sa, &["secrets"])),
        age(sa, now),
    ]
}

/// An RFC 3339 time field's age, `<unknown>` when unset.
fn stamp(ev: &Value, path: &[&str], now: DateTime<Utc>) -> Option<String> {
    at(ev, path)
        .and_then(Value::as_str)
        .and_then(parse_time)
        .map(|t| since(t, now))
}

pub(crate) fn event(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let unknown = || "<unknown>".to_string();
    let first = stamp(ev, &["firstTimestamp"], now)
        .or_else(|| stamp(ev, &["eventTime"], now))
        .unwrap_or_else(unknown);
    let mut last = stamp(ev, &["lastTimestamp"], now).unwrap_or_else(|| first.clone());
    let mut count = int_at(ev, &["count"]);
    if let Some(series) = at(ev, &["series"]).filter(|s| !s.is_null()) {
        last = stamp(series, &["lastObservedTime"], now).unwrap_or_else(unknown);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = str_at(ev, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(ev, &["involvedObject", "name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(
        str_at(ev, &["source", "component"]),
        str_at(ev, &["reportingComponent"]),
    );
    let host = first_non_empty(
        str_at(ev, &["source", "host"]),
        str_at(ev, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(ev, &["type"])),
        json!(str_at(ev, &["reason"])),
        json!(target),
        json!(str_at(ev, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(str_at(ev, &["message"]).trim()),
        json!(first),
        json!(count),
        json!(name(ev)),
    ]
}

/// Containers and images of a pod template, for the wide columns of workloads.
pub(crate) fn template_containers(obj: &Value) -> (String, String) {
    container_cells(at(obj, &["spec", "template", "spec"]))
}

/// Access modes as kubectl abbreviates them (`GetAccessModesAsString`): each once, in this order.
fn access_modes(modes: &[Value]) -> String {
    const SHORT: &[(&str, &str)] = &[
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    SHORT
        .iter()
        .filter(|(mode, _)| modes.iter().any(|m| m == mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// `printPersistentVolumeClaim`: capacity and access modes only once bound to a volume.
pub(crate) fn persistent_volume_claim(pvc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = match at(pvc, &["metadata", "deletionTimestamp"]) {
        Some(Value::String(_)) => "Terminating",
        _ => str_at(pvc, &["status", "phase"]),
    };
    let volume = str_at(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = match volume {
        "" => (String::new(), String::new()),
        _ => (
            str_at(pvc, &["status", "capacity", "storage"]).to_string(),
            access_modes(arr_at(pvc, &["status", "accessModes"])),
        ),
    };
    // The beta annotation still names the class when the field is unset (`GetPersistentVolumeClaimClass`).
    let class = match at(
        pvc,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    ) {
        Some(Value::String(c)) => c.as_str(),
        _ => str_at(pvc, &["spec", "storageClassName"]),
    };
    let or_unset = |s: &str| match s {
        "" => "<unset>".to_string(),
        s => s.to_string(),
    };
    vec![
        json!(name(pvc)),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(or_unset(str_at(
            pvc,
            &["spec", "volumeAttributesClassName"]
        ))),
        age(pvc, now),
        json!(or_unset(str_at(pvc, &["spec", "volumeMode"]))),
    ]
}
