//! OpenAPI v3 documents, enough for kubectl's server-side validation probe: each group/version
//! document lists, per kind, a `patch` operation that takes `fieldValidation`. kubectl then sends
//! `fieldValidation=Strict` and leaves validation to the server. Schemas are not served, so
//! kubectl computes strategic merge patches from its compiled-in types, as it does for
//! built-in kinds when a schema is missing.

use kinet_types::registry::{self, Resource, RESOURCES};
use serde_json::{json, Map, Value};

/// Changes whenever the served documents change, so kubectl's cache keyed on it stays right.
const HASH: &str = concat!("kinet-", env!("CARGO_PKG_VERSION"), "-1");

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `/openapi/v3`: the index of group/version documents.
pub fn index() -> Value {
    let mut paths = Map::new();
    for group in std::iter::once("").chain(registry::groups()) {
        let path = gv_path(group);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={HASH}")}),
        );
    }
    json!({"paths": paths})
}

fn item_path(r: &Resource) -> String {
    let prefix = format!("/{}", gv_path(r.group));
    if r.namespaced() {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{prefix}/{}/{{name}}", r.plural)
    }
}

fn patch_operation(r: &Resource) -> Value {
    json!({
        "operationId": format!("patch{}", r.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ],
        "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/v1`, if served.
pub fn group_version(path: &str) -> Option<Value> {
    let group = match path.trim_matches('/') {
        "api/v1" => "",
        other => other.strip_prefix("apis/")?.strip_suffix("/v1")?,
    };
    if !group.is_empty() && !registry::groups().contains(&group) {
        return None;
    }
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        paths.insert(item_path(r), json!({"patch": patch_operation(r)}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_points_at_every_group_version() {
        let idx = index();
        assert!(idx["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
        assert!(idx["paths"].get("apis/networking.k8s.io/v1").is_some());
    }

    #[test]
    fn documents_offer_field_validation_on_patch() {
        let doc = group_version("apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let core = group_version("api/v1").unwrap();
        assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(group_version("apis/batch/v1").is_none());
    }
}
