//! Service validation (ValidateService, ValidateServiceUpdate).

use kinet_types::FieldError;
use serde_json::{json, Value};

use super::meta::{invalid_each, validate_labels};
use super::names;
use super::pod::{port_num_or_name, protocol};
use crate::json::{arr, str_of};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// The default --service-node-port-range; the allocator rejects anything outside it.
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// spec.clusterIPs as the strategy normalises it: `[clusterIP]` when only clusterIP is given.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = arr(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    if ips.is_empty() && !str_of(spec, "clusterIP").is_empty() {
        return vec![str_of(spec, "clusterIP").to_string()];
    }
    ips
}

pub fn service(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    let ty = str_of(spec, "type");
    let ips = cluster_ips(spec);
    let headless = ips.first().is_some_and(|ip| ip == "None");
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_of(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                invalid_each(
                    errs,
                    "spec.externalName",
                    cname,
                    names::is_dns1123_subdomain(cname),
                );
            }
        }
        _ => {}
    }
    let mut port_names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        service_port(
            p,
            ports.len() > 1,
            &mut port_names,
            &format!("spec.ports[{i}]"),
            errs,
        );
    }
    if let Some(sel) = spec.get("selector") {
        validate_labels(sel, "spec.selector", errs);
    }
    let affinity = str_of(spec, "sessionAffinity");
    if affinity.is_empty() {
        errs.push(FieldError::required("spec.sessionAffinity", ""));
    } else if !AFFINITIES.contains(&affinity) {
        errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            affinity,
            AFFINITIES,
        ));
    }
    let config = spec.get("sessionAffinityConfig").filter(|c| !c.is_null());
    match affinity {
        "ClientIP" => client_ip_config(config, errs),
        "None" if config.is_some() => errs.push(FieldError::forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        )),
        _ => {}
    }
    for (i, ip) in ips.iter().enumerate() {
        if !(i == 0 && ip == "None") && names::parse_ip(ip).is_none() {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                names::IP_MSG,
            ));
        }
    }
    let first = str_of(spec, "clusterIP");
    if !first.is_empty() && ips.first().is_some_and(|ip| ip != first) {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            json!(ips),
            "first value must match `clusterIP`",
        ));
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if names::parse_ip(ip).is_none() {
            errs.push(FieldError::invalid(
                format!("spec.externalIPs[{i}]"),
                ip,
                names::IP_MSG,
            ));
        }
    }
    if ty.is_empty() {
        errs.push(FieldError::required("spec.type", ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
    node_ports(ports, ty, errs);
    duplicate_ports(ports, errs);
    traffic_policies(spec, ty, errs);
}

fn service_port<'a>(
    p: &'a Value,
    require_name: bool,
    seen: &mut Vec<&'a str>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let name = str_of(p, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.name"),
            name,
            names::is_dns1123_label(name),
        );
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        } else {
            seen.push(name);
        }
    }
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    invalid_each(
        errs,
        &format!("{path}.port"),
        port,
        names::is_port_num(port),
    );
    protocol(p, path, true, errs);
    if let Some(tp) = p.get("targetPort") {
        port_num_or_name(tp, &format!("{path}.targetPort"), errs);
    }
    let app = str_of(p, "appProtocol");
    if p.get("appProtocol").is_some_and(Value::is_string) {
        invalid_each(
            errs,
            &format!("{path}.appProtocol"),
            app,
            names::is_qualified_name(app),
        );
    }
}

fn client_ip_config(config: Option<&Value>, errs: &mut Vec<FieldError>) {
    const WHY: &str = "when session affinity type is ClientIP";
    let Some(config) = config else {
        return errs.push(FieldError::required("spec.sessionAffinityConfig", WHY));
    };
    let Some(client) = config.get("clientIP").filter(|c| !c.is_null()) else {
        return errs.push(FieldError::required(
            "spec.sessionAffinityConfig.clientIP",
            WHY,
        ));
    };
    let path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
    match client.get("timeoutSeconds").and_then(Value::as_i64) {
        None => errs.push(FieldError::required(path, WHY)),
        Some(t) if t <= 0 || t > 86400 => errs.push(FieldError::invalid(
            path,
            t,
            "must be greater than 0 and less than 86400",
        )),
        Some(_) => {}
    }
}

fn node_ports(ports: &[Value], ty: &str, errs: &mut Vec<FieldError>) {
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if np == 0 {
            continue;
        }
        let path = format!("spec.ports[{i}].nodePort");
        if ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                &path,
                "may not be used when `type` is 'ClusterIP'",
            ));
        } else if !NODE_PORT_RANGE.contains(&np) {
            // The allocator's message, which kube-apiserver returns as a 422 on this path.
            errs.push(FieldError::invalid(
                &path,
                np,
                "provided port is not in the valid range. The range of valid ports is 30000-32767",
            ));
        }
        let key = (str_of(p, "protocol"), np);
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(path, np));
        }
        seen.push(key);
    }
}

/// (protocol, port) pairs must be unique.
fn duplicate_ports(ports: &[Value], errs: &mut Vec<FieldError>) {
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (
            str_of(p, "protocol"),
            p.get("port").and_then(Value::as_i64).unwrap_or(0),
        );
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                json!({"port": key.1, "protocol": key.0}),
            ));
        }
        seen.push(key);
    }
}

fn traffic_policies(spec: &Value, ty: &str, errs: &mut Vec<FieldError>) {
    let external = ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    let etp = str_of(spec, "externalTrafficPolicy");
    if !external {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !TRAFFIC_POLICIES.contains(&etp) {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            etp,
            TRAFFIC_POLICIES,
        ));
    }
    // Required only for the types defaulting fills it in for.
    if matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer")
        || spec
            .get("internalTrafficPolicy")
            .is_some_and(|v| !v.is_null())
    {
        let itp = str_of(spec, "internalTrafficPolicy");
        if itp.is_empty() {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        } else if !TRAFFIC_POLICIES.contains(&itp) {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                itp,
                TRAFFIC_POLICIES,
            ));
        }
    }
}

/// ValidateServiceUpdate: assigned cluster IPs stay, unless the type moves to or from
/// ExternalName. Secondary IPs may be added or dropped.
pub fn service_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let (ns, os) = (
        new.get("spec").unwrap_or(&empty),
        old.get("spec").unwrap_or(&empty),
    );
    if str_of(ns, "type") == "ExternalName" || str_of(os, "type") == "ExternalName" {
        return;
    }
    let (new_ips, old_ips) = (cluster_ips(ns), cluster_ips(os));
    for (i, ip) in old_ips.iter().enumerate() {
        match new_ips.get(i) {
            Some(n) if n != ip => errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                json!(new_ips),
                "may not change once set",
            )),
            None if i == 0 => errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                json!(new_ips),
                "primary clusterIP can not be unset",
            )),
            _ => {}
        }
    }
}
