//! System-owned metadata: what the server sets on create and keeps on update, whatever the
//! client sent (uid, creationTimestamp, generation, deletion fields, resourceVersion).

use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use rand::Rng;
use serde_json::{json, Map, Value};

/// RFC 3339 with second precision, as metav1.Time serialises.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub fn resource_version(obj: &Value) -> Option<u64> {
    meta_str(obj, "resourceVersion").and_then(|rv| rv.parse().ok())
}

/// Kinds whose spec changes bump `metadata.generation`: some built-ins, CRDs and every
/// custom resource (a resource outside the static registry).
pub fn has_generation(resource: &Resource) -> bool {
    let custom = !kinet_types::registry::RESOURCES
        .iter()
        .any(|r| std::ptr::eq(r, resource));
    custom
        || matches!(
            resource.kind,
            "Deployment"
                | "ReplicaSet"
                | "DaemonSet"
                | "Ingress"
                | "NetworkPolicy"
                | "StatefulSet"
                | "Job"
                | "CronJob"
                | "PodDisruptionBudget"
                | "Pod"
                | "CustomResourceDefinition"
        )
}

/// Checks apiVersion/kind against the URL and fills them in when absent.
pub fn check_type(resource: &Resource, obj: &mut Value) -> Result<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    let api_version = resource.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(api_version),
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(resource.kind),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )))
        }
    }
    Ok(())
}

/// Reconciles the body's namespace and name with the URL's.
pub fn check_identity(
    resource: &Resource,
    obj: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<()> {
    let meta = metadata_mut(obj);
    if resource.namespaced() {
        let ns = namespace.ok_or_else(|| {
            ApiError::bad_request("a namespace must be given for a namespaced resource")
        })?;
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
            }
            Some(body_ns) if body_ns == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n == url_name => {}
            None | Some("") => {
                meta.insert("name".into(), json!(url_name));
            }
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )))
            }
        }
    }
    Ok(())
}

/// Expands `generateName` into a name with a random five-character suffix.
pub fn generate_name(obj: &mut Value) {
    let meta = metadata_mut(obj);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if has_name {
        return;
    }
    if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = rand::rng();
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let name = format!("{prefix}{suffix}");
        meta.insert("name".into(), json!(name));
    }
}

/// Stamps a new object: uid, creation time, generation; drops what clients may not set.
pub fn stamp_create(resource: &Resource, obj: &mut Value) {
    let generation = has_generation(resource);
    let meta = metadata_mut(obj);
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(field);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    if generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
}

/// Carries the system fields of `old` into `new` on update, and bumps generation when the spec
/// (everything but metadata and status) changed.
pub fn carry_system_fields(resource: &Resource, old: &Value, new: &mut Value) {
    let spec_changed = {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("metadata");
                map.remove("status");
            }
            v
        };
        strip(old) != strip(new)
    };
    let old_meta = metadata(old).cloned().unwrap_or_default();
    let meta = metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("managedFields");
    meta.remove("selfLink");
    if has_generation(resource) && spec_changed {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta.insert("generation".into(), json!(generation));
    }
}

/// Whether two versions of an object differ in anything but their resourceVersion.
pub fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;

    #[test]
    fn create_stamps_and_update_carries() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "web", "resourceVersion": "5", "uid": "client"}, "spec": {"replicas": 1}});
        stamp_create(deploy, &mut obj);
        assert_ne!(obj["metadata"]["uid"], "client");
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert_eq!(obj["metadata"]["generation"], 1);

        let mut new = json!({"metadata": {"name": "web", "uid": "other"}, "spec": {"replicas": 2}});
        carry_system_fields(deploy, &obj, &mut new);
        assert_eq!(new["metadata"]["uid"], obj["metadata"]["uid"]);
        assert_eq!(new["metadata"]["generation"], 2);

        let mut same = new.clone();
        carry_system_fields(deploy, &new, &mut same);
        assert_eq!(same["metadata"]["generation"], 2);
    }

    #[test]
    fn identity_and_type_checks() {
        let svc = lookup("", "v1", "services").unwrap();
        let mut obj = json!({"metadata": {"name": "a"}});
        check_type(svc, &mut obj).unwrap();
        assert_eq!(obj["kind"], "Service");
        check_identity(svc, &mut obj, Some("default"), None).unwrap();
        assert_eq!(obj["metadata"]["namespace"], "default");
        let err = check_identity(svc, &mut obj, Some("other"), None).unwrap_err();
        assert_eq!(err.code, 400);
        let mut wrong = json!({"apiVersion": "apps/v1", "kind": "Service"});
        assert!(check_type(svc, &mut wrong)
            .unwrap_err()
            .message
            .contains("does not match the expected API version (v1)"));
        let mut gen = json!({"metadata": {"generateName": "web-"}});
        generate_name(&mut gen);
        assert_eq!(gen["metadata"]["name"].as_str().unwrap().len(), 9);
    }
}
