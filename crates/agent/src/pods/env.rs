//! A container's environment, as the kubelet's `makeEnvironmentVariables` builds it: the
//! Service variables of the pod's namespace, `envFrom`, then `env` with `$(VAR)` expansion
//! and `valueFrom` (downward API, ConfigMaps, Secrets). Pure: the caller fetches the
//! ConfigMaps and Secrets named by [`references`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// Named data an `env`/`envFrom` may read: ConfigMaps' `data` or Secrets' decoded `data`.
pub type Objects = BTreeMap<String, BTreeMap<String, String>>;

/// What the environment is built from besides the container.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The Services visible to the pod (its namespace's, plus `default/kubernetes`).
    pub services: &'a [Service],
    /// ConfigMaps of the pod's namespace, by name.
    pub config_maps: &'a Objects,
    /// Secrets of the pod's namespace, by name (values decoded).
    pub secrets: &'a Objects,
    /// status.podIP and status.hostIP for the downward API.
    pub pod_ip: String,
    /// The node's address.
    pub host_ip: String,
}

/// The ConfigMaps and Secrets a container's environment reads: (config maps, secrets).
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for from in c.env_from.iter().flatten() {
        cms.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for e in c.env.iter().flatten() {
        let Some(vf) = &e.value_from else { continue };
        cms.extend(vf.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(vf.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Decodes a Secret's `data` (base64 in JSON) into strings.
pub fn secret_data(data: &BTreeMap<String, k8s_openapi::ByteString>) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The docker-link style variables for the Services (`WEB_SERVICE_HOST`, `WEB_PORT_80_TCP`...),
/// skipping headless and IP-less Services, in name order.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.metadata.name.clone());
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = env_name(svc.metadata.name.as_deref().unwrap_or(""));
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
        ));
        for p in &ports {
            let pr = proto(p);
            let prefix = format!("{name}_PORT_{}_{pr}", p.port);
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", pr.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), pr.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The container's environment (without the runtime's PATH/HOSTNAME/HOME), or the
/// kubelet's CreateContainerConfigError message.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    src: &Sources<'_>,
) -> Result<Vec<(String, String)>, String> {
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, what, name, optional) = if let Some(r) = &from.config_map_ref {
            (
                src.config_maps.get(&r.name),
                "configmap",
                &r.name,
                r.optional,
            )
        } else if let Some(r) = &from.secret_ref {
            (src.secrets.get(&r.name), "secret", &r.name, r.optional)
        } else {
            continue;
        };
        match data {
            Some(d) => d
                .iter()
                .for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v.clone())),
            None if optional == Some(true) => {}
            None => return Err(format!("{what} \"{name}\" not found")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => Some(expand(v, &env)),
            (None, Some(vf)) => value_from(pod, vf, src)?,
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    if links {
        let mut all = service_env(src.services);
        all.retain(|(k, _)| !env.iter().any(|(n, _)| n == k));
        all.extend(env);
        return Ok(all);
    }
    let mut all: Vec<(String, String)> = service_env(src.services)
        .into_iter()
        .filter(|(k, _)| k.starts_with("KUBERNETES_"))
        .filter(|(k, _)| !env.iter().any(|(n, _)| n == k))
        .collect();
    all.extend(env);
    Ok(all)
}

fn value_from(
    pod: &Pod,
    vf: &k8s_openapi::api::core::v1::EnvVarSource,
    src: &Sources<'_>,
) -> Result<Option<String>, String> {
    if let Some(f) = &vf.field_ref {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let path = f.field_path.as_str();
        let v = match path {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => meta.namespace.clone(),
            "metadata.uid" => meta.uid.clone(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
            "status.podIP" | "status.podIPs" => Some(src.pod_ip.clone()),
            "status.hostIP" | "status.hostIPs" => Some(src.host_ip.clone()),
            _ => {
                let label = |p: &str, map: &Option<BTreeMap<String, String>>| {
                    p.strip_suffix("']")
                        .and_then(|k| map.as_ref()?.get(k).cloned())
                };
                if let Some(k) = path.strip_prefix("metadata.labels['") {
                    label(k, &meta.labels)
                } else if let Some(k) = path.strip_prefix("metadata.annotations['") {
                    label(k, &meta.annotations)
                } else {
                    return Err(format!("unsupported fieldPath: {path}"));
                }
            }
        };
        return Ok(Some(v.unwrap_or_default()));
    }
    let key_ref = |data: Option<&BTreeMap<String, String>>,
                   what: &str,
                   name: &str,
                   key: &str,
                   optional: Option<bool>| {
        match data.map(|d| d.get(key)) {
            Some(Some(v)) => Ok(Some(v.clone())),
            _ if optional == Some(true) => Ok(None),
            Some(None) => Err(format!("couldn't find key {key} in {what} {name}")),
            None => Err(format!("{what} \"{name}\" not found")),
        }
    };
    if let Some(r) = &vf.config_map_key_ref {
        let ns_name = pod.metadata.namespace.as_deref().unwrap_or("default");
        return key_ref(
            src.config_maps.get(&r.name),
            "ConfigMap",
            &format!("{ns_name}/{}", r.name),
            &r.key,
            r.optional,
        );
    }
    if let Some(r) = &vf.secret_key_ref {
        let ns_name = pod.metadata.namespace.as_deref().unwrap_or("default");
        return key_ref(
            src.secrets.get(&r.name),
            "Secret",
            &format!("{ns_name}/{}", r.name),
            &r.key,
            r.optional,
        );
    }
    Ok(Some(String::new()))
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` escapes, unknown
/// references stay as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": ports}}),
        )
        .unwrap()
    }

    #[test]
    fn service_variables_follow_docker_links() {
        let env = service_env(&[
            svc(
                "my-web",
                "10.96.0.20",
                json!([{"name": "http", "port": 80}]),
            ),
            svc("headless", "None", json!([{"port": 80}])),
        ]);
        let want: Vec<(String, String)> = [
            ("MY_WEB_SERVICE_HOST", "10.96.0.20"),
            ("MY_WEB_SERVICE_PORT", "80"),
            ("MY_WEB_SERVICE_PORT_HTTP", "80"),
            ("MY_WEB_PORT", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
            ("MY_WEB_PORT_80_TCP_PORT", "80"),
            ("MY_WEB_PORT_80_TCP_ADDR", "10.96.0.20"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn expansion_of_references() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }

    #[test]
    fn env_reads_downward_api_and_config_maps() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
              "env": [
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "hi $(NODE)"},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]}]}
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(references(c), (vec!["cfg".to_string()], vec![]));
        let mut cms = Objects::new();
        cms.insert(
            "cfg".into(),
            [("mode".to_string(), "fast".to_string())].into(),
        );
        let secrets = Objects::new();
        let src = Sources {
            services: &[],
            config_maps: &cms,
            secrets: &secrets,
            pod_ip: "10.244.1.5".into(),
            host_ip: String::new(),
        };
        let env = container_env(&pod, c, &src).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.244.1.5"));
        assert_eq!(get("GREETING"), Some("hi n1"));
        assert_eq!(get("MODE"), Some("fast"));
        let empty = Objects::new();
        let src = Sources {
            services: &[],
            config_maps: &empty,
            secrets: &empty,
            pod_ip: String::new(),
            host_ip: String::new(),
        };
        assert_eq!(
            container_env(&pod, c, &src).unwrap_err(),
            "configmap \"cfg\" not found"
        );
    }
}
