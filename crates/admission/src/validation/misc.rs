//! The smaller kinds: ConfigMap, Secret, Namespace, Endpoints, EndpointSlice, Node, Lease, Event.

use kinet_types::FieldError;
use serde_json::{json, Value};

use super::meta::invalid_each;
use super::names::{self, NEGATIVE_MSG};
use super::pod::protocol;
use crate::json::{arr, str_of};

/// ConfigMaps and Secrets are capped at 1 MiB of data.
const MAX_DATA_SIZE: usize = 1024 * 1024;

fn data_keys(obj: &Value, fields: &[&str], errs: &mut Vec<FieldError>) -> usize {
    let mut total = 0;
    let mut seen: Vec<&str> = Vec::new();
    for field in fields {
        for (k, v) in obj
            .get(*field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let path = format!("{field}[{k}]");
            invalid_each(errs, &path, k.as_str(), names::is_config_map_key(k));
            if seen.contains(&k.as_str()) {
                errs.push(FieldError::invalid(
                    &path,
                    k.as_str(),
                    "duplicate of key present in data",
                ));
            }
            seen.push(k);
            total += v.as_str().map_or(0, str::len);
        }
    }
    total
}

pub fn config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    if data_keys(obj, &["data", "binaryData"], errs) > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
}

pub fn secret(obj: &Value, errs: &mut Vec<FieldError>) {
    // Secret data is base64 in JSON; its decoded size is what counts.
    if data_keys(obj, &["data"], errs) * 3 / 4 > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| obj.get("data").and_then(|d| d.get(k)).is_some();
    let required: &[&str] = match str_of(obj, "type") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.push(FieldError::required(format!("data[{k}]"), ""));
        }
    }
    if str_of(obj, "type") == "kubernetes.io/service-account-token" {
        let name = obj
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str);
        if name.is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
    }
}

pub fn namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    for f in obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = f.as_str().unwrap_or("");
        let msgs = names::is_qualified_name(f);
        if !msgs.is_empty() {
            invalid_each(errs, "spec.finalizers", f, msgs);
        } else if !f.contains('/') && f != "kubernetes" {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

pub fn endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, ss) in arr(obj, "subsets").iter().enumerate() {
        let p = format!("subsets[{i}]");
        if arr(ss, "addresses").is_empty() && arr(ss, "notReadyAddresses").is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(ss, key).iter().enumerate() {
                let ap = format!("{p}.{key}[{j}]");
                let ip = str_of(a, "ip");
                match names::parse_ip(ip) {
                    None => errs.push(FieldError::invalid(format!("{ap}.ip"), ip, names::IP_MSG)),
                    Some(addr) => special_ip(addr, ip, &format!("{ap}.ip"), errs),
                }
                let host = str_of(a, "hostname");
                if !host.is_empty() {
                    invalid_each(
                        errs,
                        &format!("{ap}.hostname"),
                        host,
                        names::is_dns1123_label(host),
                    );
                }
                if let Some(node) = a.get("nodeName").and_then(Value::as_str) {
                    invalid_each(
                        errs,
                        &format!("{ap}.nodeName"),
                        node,
                        names::is_dns1123_subdomain(node),
                    );
                }
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = format!("{p}.ports[{j}]");
            let name = str_of(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                invalid_each(
                    errs,
                    &format!("{pp}.name"),
                    name,
                    names::is_dns1123_label(name),
                );
            }
            let n = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            invalid_each(errs, &format!("{pp}.port"), n, names::is_port_num(n));
            protocol(port, &pp, true, errs);
        }
    }
}

/// ValidateNonSpecialIP: endpoints may not point at these.
fn special_ip(addr: std::net::IpAddr, ip: &str, path: &str, errs: &mut Vec<FieldError>) {
    let msg = match addr {
        a if a.is_unspecified() => Some("may not be unspecified (0.0.0.0)"),
        a if a.is_loopback() => Some("may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        std::net::IpAddr::V4(v) if v.is_link_local() => {
            Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        }
        std::net::IpAddr::V4(v) if v.octets()[..3] == [224, 0, 0] => {
            Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
        }
        std::net::IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        }
        _ => None,
    };
    if let Some(m) = msg {
        errs.push(FieldError::invalid(path, ip, m));
    }
}

pub fn endpoint_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let ty = str_of(obj, "addressType");
    if ty.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("addressType", ty, TYPES));
    }
    for (i, ep) in arr(obj, "endpoints").iter().enumerate() {
        let p = format!("endpoints[{i}]");
        let addrs = arr(ep, "addresses");
        if addrs.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.addresses"),
                "must contain at least 1 address",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ap = format!("{p}.addresses[{j}]");
            match (ty, names::parse_ip(a)) {
                ("IPv4", ip) if !ip.is_some_and(|ip| ip.is_ipv4()) => {
                    errs.push(FieldError::invalid(ap, a, "must be a valid IPv4 address"))
                }
                ("IPv6", ip) if !ip.is_some_and(|ip| ip.is_ipv6()) => {
                    errs.push(FieldError::invalid(ap, a, "must be a valid IPv6 address"))
                }
                ("FQDN", _) => invalid_each(
                    errs,
                    &ap,
                    a,
                    names::is_dns1123_subdomain(a.trim_end_matches('.')),
                ),
                _ => {}
            }
        }
        if let Some(h) = ep.get("hostname").and_then(Value::as_str) {
            invalid_each(
                errs,
                &format!("{p}.hostname"),
                h,
                names::is_dns1123_label(h),
            );
        }
        if let Some(n) = ep.get("nodeName").and_then(Value::as_str) {
            invalid_each(
                errs,
                &format!("{p}.nodeName"),
                n,
                names::is_dns1123_subdomain(n),
            );
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, port) in arr(obj, "ports").iter().enumerate() {
        let p = format!("ports[{i}]");
        let name = str_of(port, "name");
        if !name.is_empty() {
            invalid_each(
                errs,
                &format!("{p}.name"),
                name,
                names::is_dns1123_label(name),
            );
        }
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        }
        seen.push(name);
        if let Some(n) = port.get("port").and_then(Value::as_i64) {
            invalid_each(errs, &format!("{p}.port"), n, names::is_port_num(n));
        }
        protocol(port, &p, true, errs);
    }
}

pub fn node(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    for (i, c) in arr(spec, "podCIDRs").iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        if names::parse_cidr(c).is_none() {
            errs.push(FieldError::invalid(
                format!("spec.podCIDRs[{i}]"),
                c,
                names::CIDR_MSG,
            ));
        }
    }
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let p = format!("spec.taints[{i}]");
        let key = str_of(t, "key");
        invalid_each(
            errs,
            &format!("{p}.key"),
            key,
            names::is_qualified_name(key),
        );
        let value = str_of(t, "value");
        invalid_each(
            errs,
            &format!("{p}.value"),
            value,
            names::is_label_value(value),
        );
        let effect = str_of(t, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(format!("{p}.effect"), ""));
        } else if !EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{p}.effect"),
                effect,
                EFFECTS,
            ));
        }
    }
}

pub fn lease(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    if let Some(d) = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d <= 0)
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec
        .get("leaseTransitions")
        .and_then(Value::as_i64)
        .filter(|t| *t < 0)
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t,
            NEGATIVE_MSG,
        ));
    }
}

/// core/v1 Events: the involved object lives in the event's namespace.
pub fn event(obj: &Value, errs: &mut Vec<FieldError>) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ok = if involved.is_empty() {
        ns.is_empty() || ns == "default"
    } else {
        ns == involved
    };
    if !ok {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        ));
    }
}
