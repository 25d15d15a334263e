//! networking.k8s.io/v1 validation: Ingress, IngressClass, NetworkPolicy.

use kinet_types::FieldError;
use serde_json::{json, Value};

use super::meta::{invalid_each, label_selector};
use super::names;
use super::pod::port_num_or_name;
use crate::json::{arr, str_of};

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

pub fn ingress(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    let rules = arr(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            Value::Null,
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = format!("spec.rules[{i}]");
        let host = str_of(rule, "host");
        if !host.is_empty() {
            if names::parse_ip(host).is_some() {
                errs.push(FieldError::invalid(
                    format!("{p}.host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            } else if let Some(rest) = host.strip_prefix("*.") {
                if !names::is_dns1123_subdomain(rest).is_empty() {
                    errs.push(FieldError::invalid(format!("{p}.host"), host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
                }
            } else {
                invalid_each(
                    errs,
                    &format!("{p}.host"),
                    host,
                    names::is_dns1123_subdomain(host),
                );
            }
        }
        let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
            continue;
        };
        let paths = arr(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(format!("{p}.http.paths"), ""));
        }
        for (j, path) in paths.iter().enumerate() {
            http_path(path, &format!("{p}.http.paths[{j}]"), errs);
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        for (j, h) in arr(tls, "hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            let check = h.strip_prefix("*.").unwrap_or(h);
            invalid_each(
                errs,
                &format!("spec.tls[{i}].hosts[{j}]"),
                h,
                names::is_dns1123_subdomain(check),
            );
        }
    }
    let class = str_of(spec, "ingressClassName");
    if spec.get("ingressClassName").is_some_and(Value::is_string) {
        invalid_each(
            errs,
            "spec.ingressClassName",
            class,
            names::is_dns1123_subdomain(class),
        );
    }
}

fn http_path(p: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let value = str_of(p, "path");
    let ppath = format!("{path}.path");
    match str_of(p, "pathType") {
        "" => {
            return errs.push(FieldError::required(
                format!("{path}.pathType"),
                "pathType must be specified",
            ))
        }
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &ppath,
                    value,
                    "must be an absolute path",
                ));
            }
            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(seq) {
                    errs.push(FieldError::invalid(
                        &ppath,
                        value,
                        &format!("must not contain '{seq}'"),
                    ));
                }
            }
            for suffix in ["/..", "/."] {
                if value.ends_with(suffix) {
                    errs.push(FieldError::invalid(
                        &ppath,
                        value,
                        &format!("cannot end with '{suffix}'"),
                    ));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &ppath,
                    value,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.pathType"),
            other,
            PATH_TYPES,
        )),
    }
    backend(
        p.get("backend").unwrap_or(&Value::Null),
        &format!("{path}.backend"),
        errs,
    );
}

fn backend(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let resource = b.get("resource").filter(|r| !r.is_null());
    let service = b.get("service").filter(|s| !s.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            for key in ["kind", "name"] {
                if str_of(r, key).is_empty() {
                    errs.push(FieldError::required(format!("{path}.resource.{key}"), ""));
                }
            }
        }
        (None, Some(s)) => {
            let name = str_of(s, "name");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            } else {
                invalid_each(
                    errs,
                    &format!("{path}.service.name"),
                    name,
                    names::is_dns1035_label(name),
                );
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let pname = str_of(port, "name");
            let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            match (pname.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => invalid_each(
                    errs,
                    &format!("{path}.service.port.name"),
                    pname,
                    names::is_port_name(pname),
                ),
                (true, false) => invalid_each(
                    errs,
                    &format!("{path}.service.port.number"),
                    number,
                    names::is_port_num(number),
                ),
                (true, true) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

pub fn ingress_class(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let controller = str_of(obj.get("spec").unwrap_or(&empty), "controller");
    let path = "spec.controller";
    if controller.is_empty() {
        return errs.push(FieldError::required(path, ""));
    }
    if controller.len() > 250 {
        errs.push(FieldError::too_long(path, 250));
    }
    match controller.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            invalid_each(errs, path, host, names::is_dns1123_subdomain(host));
        }
        _ => errs.push(FieldError::invalid(
            path,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
}

pub fn network_policy(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    label_selector(
        spec.get("podSelector").unwrap_or(&empty),
        "spec.podSelector",
        errs,
    );
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr(spec, dir).iter().enumerate() {
            let p = format!("spec.{dir}[{i}]");
            for (j, port) in arr(rule, "ports").iter().enumerate() {
                policy_port(port, &format!("{p}.ports[{j}]"), errs);
            }
            for (j, peer) in arr(rule, peers).iter().enumerate() {
                policy_peer(peer, &format!("{p}.{peers}[{j}]"), errs);
            }
        }
    }
    let types = arr(spec, "policyTypes");
    if types.len() > 2 {
        return errs.push(FieldError::invalid(
            "spec.policyTypes",
            Value::Array(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(
                format!("spec.policyTypes[{i}]"),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn policy_port(p: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let proto = str_of(p, "protocol");
    if p.get("protocol").is_some_and(Value::is_string) && !["TCP", "UDP", "SCTP"].contains(&proto) {
        errs.push(FieldError::not_supported(
            format!("{path}.protocol"),
            proto,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = p.get("endPort").and_then(Value::as_i64);
    let end_path = format!("{path}.endPort");
    match p.get("port").filter(|v| !v.is_null()) {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            invalid_each(errs, &format!("{path}.port"), n, names::is_port_num(n));
            if let Some(e) = end {
                if e < n {
                    errs.push(FieldError::invalid(
                        &end_path,
                        n,
                        "must be greater than or equal to `port`",
                    ));
                }
                invalid_each(errs, &end_path, e, names::is_port_num(e));
            }
        }
        Some(port) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    &end_path,
                    e,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            port_num_or_name(port, &format!("{path}.port"), errs);
        }
        None => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    &end_path,
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn policy_peer(peer: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(key).filter(|s| !s.is_null()) {
            count += 1;
            label_selector(sel, &format!("{path}.{key}"), errs);
        }
    }
    let block = peer.get("ipBlock").filter(|b| !b.is_null());
    if let Some(b) = block {
        count += 1;
        ip_block(b, &format!("{path}.ipBlock"), errs);
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn ip_block(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let cidr = str_of(b, "cidr");
    if cidr.is_empty() {
        return errs.push(FieldError::required(format!("{path}.cidr"), ""));
    }
    let Some(outer) = names::parse_cidr(cidr) else {
        return errs.push(FieldError::invalid(
            format!("{path}.cidr"),
            cidr,
            names::CIDR_MSG,
        ));
    };
    for (i, e) in arr(b, "except").iter().enumerate() {
        let e = e.as_str().unwrap_or("");
        let p = format!("{path}.except[{i}]");
        match names::parse_cidr(e) {
            None => errs.push(FieldError::invalid(p, e, names::CIDR_MSG)),
            Some(inner) if !names::cidr_strict_subset(inner, outer) => errs.push(
                FieldError::invalid(p, e, "must be a strict subset of `cidr`"),
            ),
            Some(_) => {}
        }
    }
}
