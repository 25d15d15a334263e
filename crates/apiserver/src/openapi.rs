//! OpenAPI v3 documents. Each group/version document lists, per kind, a `patch` operation that
//! takes `fieldValidation` (kubectl's probe for server-side validation: it then sends
//! `fieldValidation=Strict` and leaves validation to the server), and the kinds' schemas under
//! `components.schemas`, tagged with `x-kubernetes-group-version-kind` as kube-apiserver tags
//! them, for `kubectl explain`. Schemas come from k8s-openapi's types through schemars, so they
//! describe exactly what the server decodes.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::{
    admissionregistration, apps, batch, certificates, coordination, core, discovery, networking,
    policy, rbac, scheduling,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use kinet_types::registry::{self, Resource, RESOURCES};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Changes whenever the served documents change, so kubectl's cache keyed on it stays right.
const HASH: &str = concat!("kinet-", env!("CARGO_PKG_VERSION"), "-3");

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `/openapi/v3`: the index of group/version documents; `custom` lists the custom resources'
/// documents (`apis/{group}/{version}`) with their hash, so kubectl's cache, keyed on the URL,
/// refetches one when its definition changes.
pub fn index(custom: &[(&str, &str)]) -> Value {
    let mut paths = Map::new();
    for group in std::iter::once("").chain(registry::groups()) {
        let path = gv_path(group);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={HASH}")}),
        );
    }
    for (path, hash) in custom {
        paths.insert(
            path.to_string(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The name kube-apiserver gives a custom kind's schema: `io.k8s.networking.gateway.v1.HTTPRoute`
/// for `gateway.networking.k8s.io/v1`.
fn custom_schema_name(r: &Resource) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// The document of one custom group/version: each kind's structural schema with the standard
/// apiVersion, kind and metadata fields, and its patch operation.
pub fn custom_document(kinds: &[(&Resource, &Value)]) -> Value {
    let mut gen = schemars::generate::SchemaSettings::openapi3().into_generator();
    let meta = schema_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(&mut gen);
    let mut defs: Map<String, Value> = gen.take_definitions(true).into_iter().collect();
    let mut paths = Map::new();
    for (r, schema) in kinds {
        let mut schema = (*schema).clone();
        if let Some(props) = schema
            .as_object_mut()
            .map(|o| o.entry("properties").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("#/components/schemas/{meta}")}],
                "description": "Standard object's metadata."}),
            );
        }
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        defs.insert(custom_schema_name(r), schema);
        paths.insert(item_path(r), json!({"patch": patch_operation(r)}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": defs},
    })
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

/// Registers the schema of a kind's type; returns its definition name.
fn schema_of<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    let reference = gen.subschema_for::<T>();
    let reference = reference
        .get("$ref")
        .and_then(Value::as_str)
        .unwrap_or_default();
    reference.rsplit('/').next().unwrap_or_default().to_string()
}

fn register(gen: &mut SchemaGenerator, kind: &str) -> Option<String> {
    Some(match kind {
        "Pod" => schema_of::<core::v1::Pod>(gen),
        "Service" => schema_of::<core::v1::Service>(gen),
        "Namespace" => schema_of::<core::v1::Namespace>(gen),
        "Node" => schema_of::<core::v1::Node>(gen),
        "Endpoints" => schema_of::<core::v1::Endpoints>(gen),
        "ConfigMap" => schema_of::<core::v1::ConfigMap>(gen),
        "Secret" => schema_of::<core::v1::Secret>(gen),
        "ServiceAccount" => schema_of::<core::v1::ServiceAccount>(gen),
        "Event" => schema_of::<core::v1::Event>(gen),
        "Deployment" => schema_of::<apps::v1::Deployment>(gen),
        "ReplicaSet" => schema_of::<apps::v1::ReplicaSet>(gen),
        "DaemonSet" => schema_of::<apps::v1::DaemonSet>(gen),
        "EndpointSlice" => schema_of::<discovery::v1::EndpointSlice>(gen),
        "Lease" => schema_of::<coordination::v1::Lease>(gen),
        "CertificateSigningRequest" => {
            schema_of::<certificates::v1::CertificateSigningRequest>(gen)
        }
        "Ingress" => schema_of::<networking::v1::Ingress>(gen),
        "IngressClass" => schema_of::<networking::v1::IngressClass>(gen),
        "NetworkPolicy" => schema_of::<networking::v1::NetworkPolicy>(gen),
        "CustomResourceDefinition" => schema_of::<apiextensions::CustomResourceDefinition>(gen),
        "StatefulSet" => schema_of::<apps::v1::StatefulSet>(gen),
        "ControllerRevision" => schema_of::<apps::v1::ControllerRevision>(gen),
        "Job" => schema_of::<batch::v1::Job>(gen),
        "CronJob" => schema_of::<batch::v1::CronJob>(gen),
        "PersistentVolumeClaim" => schema_of::<core::v1::PersistentVolumeClaim>(gen),
        "ResourceQuota" => schema_of::<core::v1::ResourceQuota>(gen),
        "LimitRange" => schema_of::<core::v1::LimitRange>(gen),
        "PodDisruptionBudget" => schema_of::<policy::v1::PodDisruptionBudget>(gen),
        "PriorityClass" => schema_of::<scheduling::v1::PriorityClass>(gen),
        "ValidatingWebhookConfiguration" => {
            schema_of::<admissionregistration::v1::ValidatingWebhookConfiguration>(gen)
        }
        "MutatingWebhookConfiguration" => {
            schema_of::<admissionregistration::v1::MutatingWebhookConfiguration>(gen)
        }
        "Role" => schema_of::<rbac::v1::Role>(gen),
        "ClusterRole" => schema_of::<rbac::v1::ClusterRole>(gen),
        "RoleBinding" => schema_of::<rbac::v1::RoleBinding>(gen),
        "ClusterRoleBinding" => schema_of::<rbac::v1::ClusterRoleBinding>(gen),
        _ => return None,
    })
}

/// The `components.schemas` of a group: every kind's schema and what it references.
fn schemas(group: &str) -> Map<String, Value> {
    let mut gen = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut roots = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if let Some(name) = register(&mut gen, r.kind) {
            roots.push((name, r));
        }
    }
    let mut defs: Map<String, Value> = gen.take_definitions(true).into_iter().collect();
    for (name, r) in roots {
        if let Some(schema) = defs.get_mut(&name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    defs
}

fn build(group: &str) -> Value {
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        paths.insert(item_path(r), json!({"patch": patch_operation(r)}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas(group)},
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/v1`, if served; built once, then cached.
pub fn group_version(path: &str) -> Option<&'static [u8]> {
    static DOCS: OnceLock<HashMap<&'static str, Vec<u8>>> = OnceLock::new();
    let group = match path.trim_matches('/') {
        "api/v1" => "",
        other => other.strip_prefix("apis/")?.strip_suffix("/v1")?,
    };
    let docs = DOCS.get_or_init(|| {
        std::iter::once("")
            .chain(registry::groups())
            .map(|g| (g, serde_json::to_vec(&build(g)).unwrap_or_default()))
            .collect()
    });
    docs.get(group).map(Vec::as_slice)
}

/// What kubectl's `Accept` for `/openapi/v2` names (gnostic's `openapi.v2.Document`), in the
/// `@v1.0` form it sends and the `.v1.0` form.
pub const V2_PROTOBUF_ACCEPT: &str = "com.github.proto-openapi.spec.v2";

/// The `Content-Type` of the protobuf answer: kube-apiserver's, without the `@` that Go's
/// `mime.ParseMediaType` refuses (kubectl then fails with "mime: unexpected content").
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a Swagger 2.0 document without definitions, as protobuf when `protobuf`, JSON
/// otherwise. kubectl learns server-side validation from v3 and reads v2 only for kinds v3 does
/// not list, such as removed API versions (`extensions/v1beta1` Ingress). It skips validating a
/// kind v2 does not define, so discovery then answers `no matches for kind`, as it does against
/// kube-apiserver, whose v2 lacks those versions too. Without v2 kubectl stops at "failed to
/// download openapi" instead.
pub fn v2_document(protobuf: bool) -> Vec<u8> {
    const TITLE: &str = "Kubernetes";
    const VERSION: &str = "v1.32.0";
    if !protobuf {
        let doc =
            json!({"swagger": "2.0", "info": {"title": TITLE, "version": VERSION}, "paths": {}});
        return serde_json::to_vec(&doc).unwrap_or_default();
    }
    // Length-delimited fields only: tag byte (field << 3 | 2), length, bytes.
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, TITLE.as_bytes()); // Info.title
    field(&mut info, 2, VERSION.as_bytes()); // Info.version
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0"); // Document.swagger
    field(&mut doc, 2, &info); // Document.info
    field(&mut doc, 8, &[]); // Document.paths, empty
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_is_an_empty_swagger_document() {
        let mut want = b"\x0a\x032.0\x12\x15".to_vec();
        want.extend_from_slice(b"\x0a\x0aKubernetes\x12\x07v1.32.0\x42\x00");
        assert_eq!(v2_document(true), want);
        let json: Value = serde_json::from_slice(&v2_document(false)).unwrap();
        assert_eq!(json["swagger"], "2.0");
        assert_eq!(json["paths"], json!({}));
    }

    #[test]
    fn index_points_at_every_group_version() {
        let idx = index(&[("apis/example.com/v1beta1", "h1")]);
        assert_eq!(
            idx["paths"]["apis/example.com/v1beta1"]["serverRelativeURL"],
            "/openapi/v3/apis/example.com/v1beta1?hash=h1"
        );
        assert!(idx["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
        assert!(idx["paths"].get("apis/networking.k8s.io/v1").is_some());
    }

    #[test]
    fn documents_offer_field_validation_on_patch() {
        let doc: Value = serde_json::from_slice(group_version("apis/apps/v1").unwrap()).unwrap();
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
        let core: Value = serde_json::from_slice(group_version("api/v1").unwrap()).unwrap();
        assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(group_version("apis/autoscaling/v2").is_none());
    }

    #[test]
    fn kinds_carry_their_group_version_kind_for_explain() {
        let doc: Value = serde_json::from_slice(group_version("api/v1").unwrap()).unwrap();
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        assert!(
            doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                .is_object()
        );
    }
}
