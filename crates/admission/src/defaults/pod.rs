//! Pod and pod-template defaults (pkg/apis/core/v1/defaults.go). `pod_spec` is what every
//! PodSpec gets, templates included; `pod` adds what only a Pod object gets (SetDefaults_Pod).

use serde_json::{json, Value};

use crate::json::{child, default_int, default_str, default_to, ensure, items, Obj};

/// SetDefaults_Pod plus the PodSpec defaults.
pub fn pod(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    for key in ["containers", "initContainers"] {
        for c in items(spec, key) {
            requests_from_limits(c);
        }
    }
    default_to(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in items(spec, key) {
                for p in items(c, "ports") {
                    if p.get("hostPort")
                        .and_then(Value::as_i64)
                        .is_none_or(|n| n == 0)
                    {
                        let port = p.get("containerPort").cloned().unwrap_or(json!(0));
                        p.insert("hostPort".into(), port);
                    }
                }
            }
        }
    }
    pod_spec(spec);
}

/// Only for Pods: requests default to limits, resource by resource.
fn requests_from_limits(c: &mut Obj) {
    let Some(res) = child(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = ensure(res, "requests");
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// The template's `spec` (PodTemplateSpec.spec) of a workload.
pub fn template(spec: &mut Obj) {
    let tmpl = ensure(spec, "template");
    pod_spec(ensure(tmpl, "spec"));
}

/// SetDefaults_PodSpec and the defaults of everything inside a PodSpec.
pub fn pod_spec(spec: &mut Obj) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_to(spec, "securityContext", json!({}));
    default_to(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Obj) {
    if c.get("imagePullPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // ResourceRequirements is a non-pointer struct: Go always encodes it.
    default_to(c, "resources", json!({}));
    for p in items(c, "ports") {
        default_str(p, "protocol", "TCP");
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, key) {
            probe(p);
        }
    }
    if let Some(lc) = child(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = child(lc, key).and_then(|h| child(h, "httpGet")) {
                http_get(h);
            }
        }
    }
    for e in items(c, "env") {
        if let Some(f) = child(e, "valueFrom").and_then(|v| child(v, "fieldRef")) {
            default_str(f, "apiVersion", "v1");
        }
    }
}

fn probe(p: &mut Obj) {
    default_int(p, "timeoutSeconds", 1);
    default_int(p, "periodSeconds", 10);
    default_int(p, "successThreshold", 1);
    default_int(p, "failureThreshold", 3);
    if let Some(h) = child(p, "httpGet") {
        http_get(h);
    }
}

fn http_get(h: &mut Obj) {
    default_str(h, "path", "/");
    default_str(h, "scheme", "HTTP");
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn volume(v: &mut Obj) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    // 0644, the mode Go writes as 420.
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = child(v, key) {
            default_to(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = child(v, "hostPath") {
        default_to(h, "type", json!(""));
    }
    if let Some(items) = child(v, "downwardAPI")
        .and_then(|d| d.get_mut("items"))
        .and_then(Value::as_array_mut)
    {
        for f in items
            .iter_mut()
            .filter_map(|i| i.get_mut("fieldRef"))
            .filter_map(Value::as_object_mut)
        {
            default_str(f, "apiVersion", "v1");
        }
    }
    if let Some(sources) = child(v, "projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
    {
        for t in sources
            .iter_mut()
            .filter_map(|s| s.get_mut("serviceAccountToken"))
            .filter_map(Value::as_object_mut)
        {
            default_to(t, "expirationSeconds", json!(3600));
        }
    }
}

/// The tag kubelet would pull: "latest" when neither tag nor digest is given; `None` when the
/// reference does not parse (upper case, empty) or only has a digest.
pub fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[slash..].rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    // Repository names are lower case; anything else fails to parse.
    if repo.is_empty() || repo.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        let cases = [
            ("nginx", Some("latest")),
            ("nginx:latest", Some("latest")),
            ("nginx:1.25", Some("1.25")),
            ("localhost:5000/app", Some("latest")),
            ("localhost:5000/app:v1", Some("v1")),
            ("app@sha256:abc", None),
            ("app:latest@sha256:abc", Some("latest")),
            ("Nginx", None),
            ("app:V1", Some("V1")),
            ("", None),
        ];
        for (image, want) in cases {
            assert_eq!(image_tag(image).as_deref(), want, "{image}");
        }
    }
}
