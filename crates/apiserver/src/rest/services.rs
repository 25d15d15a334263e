//! What a Service holds from the allocators: its ClusterIP, its NodePorts and its health-check
//! port. Create and update compute a [`Grant`]; a failed write rolls it back, a committed one
//! releases what the old version held and the new one no longer does.

use std::net::Ipv4Addr;

use kinet_types::FieldError;
use serde_json::{json, Value};

use super::alloc::Allocators;

/// What one Service version holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings {
    pub ips: Vec<Ipv4Addr>,
    pub ports: Vec<u16>,
}

impl Holdings {
    /// Reads what a stored Service holds.
    pub fn of(svc: &Value) -> Holdings {
        let spec = &svc["spec"];
        let ips = spec["clusterIPs"]
            .as_array()
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip.as_str()?.parse().ok())
                    .collect::<Vec<_>>()
            })
            // A client's Service may carry an empty `clusterIPs` beside the `clusterIP` it asks for.
            .filter(|ips| !ips.is_empty())
            .or_else(|| {
                spec["clusterIP"]
                    .as_str()
                    .and_then(|ip| ip.parse().ok())
                    .map(|ip| vec![ip])
            })
            .unwrap_or_default();
        let mut ports: Vec<u16> = spec["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| p["nodePort"].as_u64())
                    .map(|p| p as u16)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(hc) = spec["healthCheckNodePort"].as_u64() {
            ports.push(hc as u16);
        }
        Holdings { ips, ports }
    }

    pub fn claim(&self, alloc: &mut Allocators, owner: &str) {
        for ip in &self.ips {
            let _ = alloc.allocate_ip(owner, Some(*ip));
        }
        for port in &self.ports {
            let _ = alloc.allocate_port(owner, "", Some(*port));
        }
    }

    pub fn release(&self, alloc: &mut Allocators, owner: &str) {
        for ip in &self.ips {
            alloc.release_ip(owner, *ip);
        }
        for port in &self.ports {
            alloc.release_port(owner, *port);
        }
    }

    /// What `self` holds that `other` does not.
    pub fn minus(&self, other: &Holdings) -> Holdings {
        Holdings {
            ips: self
                .ips
                .iter()
                .filter(|ip| !other.ips.contains(ip))
                .copied()
                .collect(),
            ports: self
                .ports
                .iter()
                .filter(|p| !other.ports.contains(p))
                .copied()
                .collect(),
        }
    }
}

fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

/// Fills in the ClusterIP and NodePorts of `svc` (new, or an update of `old`), allocating what it
/// asks for. On error nothing stays allocated.
pub fn allocate(
    alloc: &mut Allocators,
    owner: &str,
    svc: &mut Value,
    old: Option<&Value>,
) -> Result<(), Vec<FieldError>> {
    let before = old.map(Holdings::of).unwrap_or_default();
    // Claims made by this call, undone on error.
    let mut taken = Holdings::default();
    let result = fill(alloc, owner, svc, old, &before, &mut taken);
    if result.is_err() {
        taken.minus(&before).release(alloc, owner);
    }
    result
}

fn fill(
    alloc: &mut Allocators,
    owner: &str,
    svc: &mut Value,
    old: Option<&Value>,
    before: &Holdings,
    taken: &mut Holdings,
) -> Result<(), Vec<FieldError>> {
    let kind = svc_type(svc).to_string();
    let spec = svc["spec"]
        .as_object_mut()
        .ok_or_else(|| vec![FieldError::required("spec", "")])?;
    if kind == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            port.as_object_mut().map(|p| p.remove("nodePort"));
        }
        return Ok(());
    }
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .or_else(|| spec.get("clusterIPs")?.get(0)?.as_str())
        .map(str::to_string);
    let kept = old
        .and_then(|o| o["spec"]["clusterIP"].as_str())
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_string);
    match requested.or(kept) {
        Some(none) if none == "None" => {
            spec.insert("clusterIP".into(), json!("None"));
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        requested => {
            let wanted = match requested {
                Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        text.as_str(),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )]
                })?),
                None => None,
            };
            let ip = alloc.allocate_ip(owner, wanted).map_err(|e| vec![e])?;
            taken.ips.push(ip);
            spec.insert("clusterIP".into(), json!(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        }
    }
    if !spec.contains_key("ipFamilies") {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
    if !spec.contains_key("ipFamilyPolicy") {
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }

    let wants_node_ports = kind == "NodePort"
        || (kind == "LoadBalancer"
            && spec
                .get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false));
    let old_ports = old
        .and_then(|o| o["spec"]["ports"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut errors = Vec::new();
    for (i, port) in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(p) = port.as_object_mut() else {
            continue;
        };
        let requested = p.get("nodePort").and_then(Value::as_u64).map(|n| n as u16);
        if !wants_node_ports && requested.is_none() {
            continue;
        }
        if kind == "ClusterIP" {
            // Only NodePort and LoadBalancer Services hold node ports; a leftover is dropped.
            p.remove("nodePort");
            continue;
        }
        // An update that leaves nodePort unset keeps the one the same port had.
        let reused = requested.or_else(|| {
            old_ports
                .iter()
                .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                .and_then(|o| o["nodePort"].as_u64())
                .map(|n| n as u16)
                .filter(|n| before.ports.contains(n))
        });
        match alloc.allocate_port(owner, &format!("spec.ports[{i}].nodePort"), reused) {
            Ok(n) => {
                taken.ports.push(n);
                p.insert("nodePort".into(), json!(n));
            }
            Err(e) => errors.push(e),
        }
    }
    let local = spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    if kind == "LoadBalancer" && local {
        let requested = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_u64)
            .map(|n| n as u16)
            .or_else(|| {
                old.and_then(|o| o["spec"]["healthCheckNodePort"].as_u64())
                    .map(|n| n as u16)
            });
        match alloc.allocate_port(owner, "spec.healthCheckNodePort", requested) {
            Ok(n) => {
                taken.ports.push(n);
                spec.insert("healthCheckNodePort".into(), json!(n));
            }
            Err(e) => errors.push(e),
        }
    } else {
        spec.remove("healthCheckNodePort");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::super::alloc::NetworkConfig;
    use super::*;

    #[test]
    fn node_port_service_gets_ip_and_ports_and_keeps_them() {
        let mut a = Allocators::new(NetworkConfig::default());
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 443, "protocol": "TCP"}]}});
        allocate(&mut a, "core/services/default/np", &mut svc, None).unwrap();
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
        assert!(svc["spec"]["ports"][1]["nodePort"].as_u64().is_some());
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));

        let mut update =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        allocate(&mut a, "core/services/default/np", &mut update, Some(&svc)).unwrap();
        assert_eq!(update["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(update["spec"]["clusterIP"], svc["spec"]["clusterIP"]);

        let mut other =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        let errs = allocate(&mut a, "core/services/default/np2", &mut other, None).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        // The failed create did not keep its ClusterIP.
        assert_eq!(Holdings::of(&other).ips.len(), 1);
        let leaked = Holdings::of(&other).ips[0];
        assert!(a.allocate_ip("x", Some(leaked)).is_ok());
    }

    #[test]
    fn headless_and_external_name_hold_nothing() {
        let mut a = Allocators::new(NetworkConfig::default());
        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        allocate(&mut a, "h", &mut headless, None).unwrap();
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(Holdings::of(&headless), Holdings::default());
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        allocate(&mut a, "e", &mut ext, None).unwrap();
        assert!(ext["spec"].get("clusterIP").is_none());
    }
}
