use super::*;
use serde_json::json;

fn crd() -> Value {
    json!({"metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "properties": {"size": {"type": "integer"},
                         "port": {"x-kubernetes-int-or-string": true},
                         "raw": {"x-kubernetes-preserve-unknown-fields": true}}}}}},
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                 "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v1alpha1", "served": false, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
}

fn messages(crd: &Value) -> Vec<String> {
    validate_definition(crd)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_valid_definition_and_what_it_serves() {
    assert_eq!(messages(&crd()), Vec::<String>::new());
    let d = Definition::from_object(&crd());
    assert_eq!(
        (d.singular.as_str(), d.list_kind.as_str()),
        ("widget", "WidgetList")
    );
    assert_eq!(d.storage, "v1");
    let names: Vec<&str> = d.versions.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["v1", "v1beta1"]);
    let v1 = d.version("v1").unwrap();
    assert!(v1.status);
    assert_eq!(v1.scale.as_ref().unwrap().spec_replicas, ".spec.size");
    assert_eq!(v1.columns[0].name, "Size");
    assert_eq!(d.version("v1beta1").unwrap().columns[0].name, "Age");
    assert_eq!(d.accepted_names()["shortNames"], json!(["wd"]));
}

#[test]
fn names_group_and_scope() {
    let mut bad = crd();
    bad["metadata"]["name"] = json!("widgets");
    bad["spec"]["group"] = json!("example");
    bad["spec"]["scope"] = json!("Global");
    bad["spec"]["names"]["plural"] = json!("Widgets");
    assert_eq!(
        messages(&bad),
        [
            r#"metadata.name: Invalid value: "widgets": must be spec.names.plural+"."+spec.group"#,
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
            r#"spec.names.plural: Invalid value: "Widgets": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"#,
        ]
    );
}

#[test]
fn exactly_one_storage_version() {
    let mut bad = crd();
    bad["spec"]["versions"][1]["storage"] = json!(true);
    bad["spec"]["versions"][2]["name"] = json!("v1");
    assert_eq!(
        messages(&bad),
        [
            r#"spec.versions: Invalid value: []string{"v1", "v1beta1", "v1"}: must have exactly one version marked as storage version"#,
            r#"spec.versions[2].name: Duplicate value: "v1""#,
        ]
    );
}

#[test]
fn structural_schema_rules() {
    let mut bad = crd();
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = json!({
        "type": "object",
        "properties": {"a": {"description": "no type"},
            "b": {"type": "string", "x-kubernetes-int-or-string": true},
            "c": {"type": "string", "x-kubernetes-embedded-resource": true},
            "d": {"type": "object", "x-kubernetes-preserve-unknown-fields": false}},
        "additionalProperties": {"type": "string"}});
    bad["spec"]["versions"][1]["schema"] = json!({});
    let p = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
    assert_eq!(
        messages(&bad),
        [
            format!("{p}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
            format!("{p}.properties[a].type: Required value: must not be empty for specified object fields"),
            format!(r#"{p}.properties[b].type: Invalid value: "string": must be empty if x-kubernetes-int-or-string is true"#),
            format!("{p}.properties[c].type: Required value: must be object if x-kubernetes-embedded-resource is true"),
            format!("{p}.properties[d].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"),
            "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required".to_string(),
        ]
    );
}

#[test]
fn subresources_and_columns() {
    let mut bad = crd();
    bad["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".status.x"});
    bad["spec"]["versions"][0]["additionalPrinterColumns"] = json!([{"name": "X", "type": "map"}]);
    let p = "spec.versions[0]";
    assert_eq!(
        messages(&bad),
        [
            format!(
                r#"{p}.subresources.scale.specReplicasPath: Invalid value: ".status.x": should be a json path under .spec"#
            ),
            format!("{p}.subresources.scale.statusReplicasPath: Required value"),
            format!("{p}.additionalPrinterColumns[0].jsonPath: Required value"),
            format!(
                r#"{p}.additionalPrinterColumns[0].type: Unsupported value: "map": supported values: "boolean", "date", "integer", "number", "string""#
            ),
        ]
    );
}

#[test]
fn junctors_only_validate_values() {
    let mut bad = crd();
    let schema = &mut bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    schema["anyOf"] = json!([{"properties": {"metadata": {"required": ["name"]}, "extra": {}}}]);
    schema["properties"]["spec"]["properties"]["size"] = json!({"type": "integer",
        "oneOf": [{"type": "integer", "minimum": 1}, {"properties": {"x": {"default": 1}}}],
        "not": {"description": "d", "nullable": true, "x-kubernetes-validations": [{"rule": "true"}]},
        "allOf": [{"items": {"title": "t"}}]});
    // The int-or-string pattern is the one place a type may appear.
    schema["properties"]["spec"]["properties"]["port"] = json!({"x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]});
    let p = "spec.versions[0].schema.openAPIV3Schema";
    let size = format!("{p}.properties[spec].properties[size]");
    assert_eq!(
        messages(&bad),
        [
            format!("{p}.anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"),
            format!("{p}.properties[extra]: Required value: because it is defined in {p}.anyOf[0].properties[extra]"),
            format!("{p}.properties[metadata]: Required value: because it is defined in {p}.anyOf[0].properties[metadata]"),
            format!("{size}.allOf[0].items.title: Forbidden: must be empty to be structural"),
            format!("{size}.not.description: Forbidden: must be empty to be structural"),
            format!("{size}.not.nullable: Forbidden: must be false to be structural"),
            format!("{size}.not.x-kubernetes-validations: Forbidden: must be empty to be structural"),
            format!("{size}.oneOf[0].type: Forbidden: must be empty to be structural"),
            format!("{size}.oneOf[1].properties[x].default: Forbidden: must be undefined to be structural"),
        ]
    );
}
