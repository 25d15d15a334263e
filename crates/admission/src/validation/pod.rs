//! Pod and PodSpec validation (pkg/apis/core/validation: ValidatePodSpec and friends).

use kinet_types::FieldError;
use serde_json::Value;

use super::meta::{invalid_each, validate_labels};
use super::names::{self, NEGATIVE_MSG};
use crate::json::{arr, str_of};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// A string field that must be set and be one of `supported`.
pub fn enum_field(
    v: &Value,
    key: &str,
    path: &str,
    supported: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let s = str_of(v, key);
    if s.is_empty() {
        errs.push(FieldError::required(format!("{path}.{key}"), ""));
    } else if !supported.contains(&s) {
        errs.push(FieldError::not_supported(
            format!("{path}.{key}"),
            s,
            supported,
        ));
    }
}

/// A protocol that, when set, must be TCP, UDP or SCTP.
pub fn protocol(v: &Value, path: &str, required: bool, errs: &mut Vec<FieldError>) {
    if required || v.get("protocol").is_some_and(|p| !p.is_null()) {
        enum_field(v, "protocol", path, PROTOCOLS, errs);
    }
}

fn nonnegative(v: &Value, key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = v.get(key).and_then(Value::as_i64).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            format!("{path}.{key}"),
            n,
            NEGATIVE_MSG,
        ));
    }
}

/// ValidatePodSpec, for a Pod's spec or a template's.
pub fn pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let volumes = volumes(spec, &format!("{path}.volumes"), errs);
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names: Vec<String> = Vec::new();
    for key in ["containers", "initContainers"] {
        for (i, c) in arr(spec, key).iter().enumerate() {
            container(c, &format!("{path}.{key}[{i}]"), &volumes, &mut names, errs);
        }
    }
    let regular = names.clone();
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = format!("{path}.ephemeralContainers[{i}]");
        container(c, &p, &volumes, &mut names, errs);
        ephemeral_container(c, &p, &regular, errs);
    }
    enum_field(spec, "restartPolicy", path, RESTART_POLICIES, errs);
    enum_field(spec, "dnsPolicy", path, DNS_POLICIES, errs);
    if let Some(sel) = spec.get("nodeSelector") {
        validate_labels(sel, &format!("{path}.nodeSelector"), errs);
    }
    let sa = str_of(spec, "serviceAccountName");
    if !sa.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.serviceAccountName"),
            sa,
            names::is_dns1123_subdomain(sa),
        );
    }
    let node = str_of(spec, "nodeName");
    if !node.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.nodeName"),
            node,
            names::is_dns1123_subdomain(node),
        );
    }
    nonnegative(spec, "terminationGracePeriodSeconds", path, errs);
    if let Some(n) = spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .filter(|n| *n < 1)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            n,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    dns_config(spec, path, errs);
    tolerations(spec, &format!("{path}.tolerations"), errs);
}

/// Volume names, returned so mounts can be checked against them.
fn volumes(spec: &Value, path: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let p = format!("{path}[{i}].name");
        let name = str_of(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p, ""));
            continue;
        }
        invalid_each(errs, &p, name, names::is_dns1123_label(name));
        if seen.iter().any(|s| s == name) {
            errs.push(FieldError::duplicate(p, name));
        }
        seen.push(name.to_string());
    }
    seen
}

fn container(
    c: &Value,
    path: &str,
    volumes: &[String],
    names: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = str_of(c, "name");
    let name_path = format!("{path}.name");
    if name.is_empty() {
        errs.push(FieldError::required(name_path, ""));
    } else {
        invalid_each(errs, &name_path, name, names::is_dns1123_label(name));
        if names.iter().any(|n| n == name) {
            errs.push(FieldError::duplicate(name_path, name));
        }
        names.push(name.to_string());
    }
    if str_of(c, "image").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    enum_field(
        c,
        "terminationMessagePolicy",
        path,
        TERMINATION_MESSAGE_POLICIES,
        errs,
    );
    enum_field(c, "imagePullPolicy", path, PULL_POLICIES, errs);
    container_ports(c, &format!("{path}.ports"), errs);
    for (i, e) in arr(c, "env").iter().enumerate() {
        if str_of(e, "name").is_empty() {
            errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
    }
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        let name = str_of(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if !volumes.iter().any(|v| v == name) {
            errs.push(FieldError::not_found(format!("{p}.name"), name));
        }
        if str_of(m, "mountPath").is_empty() {
            errs.push(FieldError::required(format!("{p}.mountPath"), ""));
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(key).filter(|p| p.is_object()) {
            probe(p, key, &format!("{path}.{key}"), errs);
        }
    }
}

/// Fields an ephemeral container may not set, in the order of the Container type
/// (`allowedEphemeralContainerFields` is the complement).
const NOT_FOR_EPHEMERAL: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];
const EPHEMERAL_MSG: &str = "cannot be set for an Ephemeral Container";

/// `validateEphemeralContainers` beyond what every container gets: its target must be one of
/// the pod's other containers, and it runs no workload (no ports, probes, resources...).
fn ephemeral_container(c: &Value, path: &str, regular: &[String], errs: &mut Vec<FieldError>) {
    let target = str_of(c, "targetContainerName");
    if !target.is_empty() && !regular.iter().any(|n| n == target) {
        errs.push(FieldError::not_found(
            format!("{path}.targetContainerName"),
            target,
        ));
    }
    for key in NOT_FOR_EPHEMERAL {
        let set = match c.get(*key) {
            None | Some(Value::Null) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(
                format!("{path}.{key}"),
                EPHEMERAL_MSG,
            ));
        }
    }
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        if !str_of(m, "subPath").is_empty() {
            let p = format!("{path}.volumeMounts[{i}].subPath");
            errs.push(FieldError::forbidden(p, EPHEMERAL_MSG));
        }
    }
}

/// `ValidatePodEphemeralContainersUpdate`, part 2: ephemeral containers are only ever added;
/// the ones there may be neither removed nor changed.
pub fn ephemeral_containers_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let path = "spec.ephemeralContainers";
    let now = arr(&new["spec"], "ephemeralContainers");
    for before in arr(&old["spec"], "ephemeralContainers") {
        let name = str_of(before, "name");
        match now.iter().find(|c| str_of(c, "name") == name) {
            None => errs.push(FieldError::forbidden(
                path,
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(after) if after != before => errs.push(FieldError::forbidden(
                format!("{path}[{name}]"),
                &format!("existing ephemeral containers {name:?} may not be changed\n"),
            )),
            Some(_) => {}
        }
    }
}

fn container_ports(c: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in arr(c, "ports").iter().enumerate() {
        let pp = format!("{path}[{i}]");
        let name = str_of(p, "name");
        if !name.is_empty() {
            let msgs = names::is_port_name(name);
            if !msgs.is_empty() {
                invalid_each(errs, &format!("{pp}.name"), name, msgs);
            } else if seen.contains(&name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            } else {
                seen.push(name);
            }
        }
        match p.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => errs.push(FieldError::required(format!("{pp}.containerPort"), "")),
            n => invalid_each(
                errs,
                &format!("{pp}.containerPort"),
                n,
                names::is_port_num(n),
            ),
        }
        if let Some(h) = p
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|h| *h != 0)
        {
            invalid_each(errs, &format!("{pp}.hostPort"), h, names::is_port_num(h));
        }
        protocol(p, &pp, true, errs);
    }
}

fn probe(p: &Value, kind: &str, path: &str, errs: &mut Vec<FieldError>) {
    let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
        .iter()
        .filter(|h| p.get(**h).is_some_and(|v| !v.is_null()))
        .count();
    match handlers {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(p, key, path, errs);
    }
    if kind != "readinessProbe" {
        if let Some(n) = p
            .get("successThreshold")
            .and_then(Value::as_i64)
            .filter(|n| *n != 1)
        {
            errs.push(FieldError::invalid(
                format!("{path}.successThreshold"),
                n,
                "must be 1",
            ));
        }
    }
    if let Some(port) = p
        .get("httpGet")
        .and_then(|h| h.get("port"))
        .or_else(|| p.get("tcpSocket").and_then(|t| t.get("port")))
    {
        let handler = if p.get("httpGet").is_some() {
            "httpGet"
        } else {
            "tcpSocket"
        };
        port_num_or_name(port, &format!("{path}.{handler}.port"), errs);
    }
}

/// ValidatePortNumOrName, for IntOrString ports.
pub fn port_num_or_name(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match port {
        Value::String(s) => invalid_each(errs, path, s.as_str(), names::is_port_name(s)),
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            invalid_each(errs, path, n, names::is_port_num(n));
        }
        _ => {}
    }
}

fn dns_config(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let config = spec.get("dnsConfig").filter(|c| c.is_object());
    if str_of(spec, "dnsPolicy") == "None" {
        match config {
            None => {
                errs.push(FieldError::required(
                    format!("{path}.dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                errs.push(FieldError::required(
                    format!("{path}.dnsConfig.nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            Some(_) => {}
        }
    }
    let Some(c) = config else { return };
    let servers = arr(c, "nameservers");
    if servers.len() > 3 {
        errs.push(FieldError::invalid(
            format!("{path}.dnsConfig.nameservers"),
            Value::Array(servers.to_vec()),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, s) in servers.iter().enumerate() {
        let s = s.as_str().unwrap_or("");
        if names::parse_ip(s).is_none() {
            errs.push(FieldError::invalid(
                format!("{path}.dnsConfig.nameservers[{i}]"),
                s,
                names::IP_MSG,
            ));
        }
    }
}

fn tolerations(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, t) in arr(spec, "tolerations").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = str_of(t, "key");
        let op = str_of(t, "operator");
        if !key.is_empty() {
            invalid_each(
                errs,
                &format!("{p}.key"),
                key,
                names::is_qualified_name(key),
            );
        } else if op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{p}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_of(t, "effect");
        if t.get("tolerationSeconds").is_some_and(|s| !s.is_null()) && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{p}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "" | "Equal" => {
                let value = str_of(t, "value");
                invalid_each(
                    errs,
                    &format!("{p}.value"),
                    value,
                    names::is_label_value(value),
                );
            }
            "Exists" => {
                if !str_of(t, "value").is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        str_of(t, "value"),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{p}.effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
}

/// The fields of a Pod spec an update may change (pkg/apis/core/validation ValidatePodUpdate).
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Pod spec updates: everything but images, activeDeadlineSeconds and added tolerations is
/// immutable. kube-apiserver appends a diff of the specs to the message; kinet does not.
pub fn pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let mut masked = old_spec.clone();
    for key in ["containers", "initContainers"] {
        let new_list = arr(new_spec, key);
        if let Some(list) = masked.get_mut(key).and_then(Value::as_array_mut) {
            if list.len() == new_list.len() {
                for (o, n) in list.iter_mut().zip(new_list) {
                    if let (Some(o), Some(img)) = (o.as_object_mut(), n.get("image")) {
                        o.insert("image".into(), img.clone());
                    }
                }
            }
        }
    }
    let old_tolerations = arr(old_spec, "tolerations");
    let new_tolerations = arr(new_spec, "tolerations");
    let only_added = old_tolerations.iter().all(|t| new_tolerations.contains(t));
    if let Some(m) = masked.as_object_mut() {
        if only_added {
            match new_spec.get("tolerations") {
                Some(t) => m.insert("tolerations".into(), t.clone()),
                None => m.remove("tolerations"),
            };
        }
        for key in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
            match new_spec.get(key) {
                Some(v)
                    if key == "activeDeadlineSeconds"
                        || old_spec
                            .get(key)
                            .and_then(Value::as_i64)
                            .is_some_and(|n| n < 0) =>
                {
                    m.insert(key.into(), v.clone());
                }
                _ => {}
            }
        }
    }
    if &masked != new_spec {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_MSG));
    }
}
