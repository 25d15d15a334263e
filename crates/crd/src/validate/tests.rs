//! Golden cases: each object, and the exact messages kube-apiserver gives for it.

use super::*;
use serde_json::json;

fn route_schema() -> Value {
    json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["parentRefs"], "properties": {
            "parentRefs": {"type": "array", "maxItems": 2, "items": {"type": "object",
                "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 8},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "sectionName": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}}}},
            "hostnames": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "hostname"},
                "x-kubernetes-list-type": "set"},
            "mode": {"type": "string", "enum": ["Exact", "PathPrefix"]},
            "weight": {"type": "number", "maximum": 1, "exclusiveMaximum": true},
            "port": {"x-kubernetes-int-or-string": true},
            "note": {"type": "string", "nullable": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}})
}

fn messages(obj: Value) -> Vec<String> {
    validate(&route_schema(), &obj)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_valid_object_passes() {
    let obj = json!({"apiVersion": "x/v1", "kind": "R", "metadata": {"name": "r"},
        "spec": {"parentRefs": [{"name": "gw", "port": 80, "sectionName": "http"}],
            "hostnames": ["a.example.com"], "mode": "Exact", "weight": 0.5, "port": "http",
            "note": null, "labels": {"a": "b"}}});
    assert_eq!(messages(obj), Vec::<String>::new());
}

#[test]
fn required_fields() {
    assert_eq!(
        messages(json!({"spec": {}})),
        ["spec.parentRefs: Required value"]
    );
    assert_eq!(
        messages(json!({"spec": {"parentRefs": [{"port": 80}]}})),
        ["spec.parentRefs[0].name: Required value"]
    );
}

#[test]
fn enums() {
    assert_eq!(
        messages(json!({"spec": {"parentRefs": [], "mode": "Regex"}})),
        [r#"spec.mode: Unsupported value: "Regex": supported values: "Exact", "PathPrefix""#]
    );
}

#[test]
fn types() {
    assert_eq!(
        messages(
            json!({"spec": {"parentRefs": [{"name": "a", "port": "80"}], "labels": {"a": 1}}})
        ),
        [
            r#"spec.parentRefs[0].port: Invalid value: "string": spec.parentRefs[0].port in body must be of type integer: "string""#,
            r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#,
        ]
    );
    assert_eq!(
        messages(json!({"spec": {"parentRefs": [], "port": true, "mode": null}})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type int-or-string: "boolean""#,
            r#"spec.mode: Invalid value: "null": spec.mode in body must be of type string: "null""#,
        ]
    );
}

#[test]
fn bounds_patterns_and_formats() {
    let obj = json!({"spec": {
        "parentRefs": [{"name": "", "port": 0}, {"name": "far-too-long", "port": 70000, "sectionName": "Bad_Name"}, {"name": "c"}],
        "hostnames": [], "weight": 1}});
    assert_eq!(
        messages(obj),
        [
            "spec.parentRefs: Too many: 3: must have at most 2 items",
            r#"spec.parentRefs[0].name: Invalid value: "": spec.parentRefs[0].name in body should be at least 1 chars long"#,
            "spec.parentRefs[0].port: Invalid value: 0: spec.parentRefs[0].port in body should be greater than or equal to 1",
            "spec.parentRefs[1].name: Too long: may not be more than 8 bytes",
            "spec.parentRefs[1].port: Invalid value: 70000: spec.parentRefs[1].port in body should be less than or equal to 65535",
            r#"spec.parentRefs[1].sectionName: Invalid value: "Bad_Name": spec.parentRefs[1].sectionName in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#,
            "spec.hostnames: Invalid value: []string{}: spec.hostnames in body should have at least 1 items",
            "spec.weight: Invalid value: 1: spec.weight in body should be less than 1",
        ]
    );
    assert_eq!(
        messages(json!({"spec": {"parentRefs": [], "hostnames": ["a..b", "x", "x"]}})),
        [
            r#"spec.hostnames[0]: Invalid value: "a..b": spec.hostnames[0] in body must be of type hostname: "a..b""#,
            r#"spec.hostnames[2]: Duplicate value: "x""#,
        ]
    );
}

#[test]
fn common_formats() {
    assert!(format_ok("ipv4", "10.0.0.1") && !format_ok("ipv4", "10.0.0"));
    assert!(format_ok("cidr", "10.0.0.0/8") && !format_ok("cidr", "10.0.0.0/33"));
    assert!(format_ok("date-time", "2026-01-01T00:00:00Z") && !format_ok("date-time", "today"));
    assert!(format_ok("uuid", "0b7c1d9e-27a4-4c1e-9a3b-5f0e6d2c8a11"));
    assert!(format_ok("int32", "anything"));
}

fn junctor_messages(obj: Value) -> Vec<String> {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "oneOf": [{"required": ["path"]}, {"required": ["regex"]}],
        "not": {"required": ["legacy"]},
        "properties": {
            "path": {"type": "string"}, "regex": {"type": "string"}, "legacy": {"type": "string"},
            "port": {"type": "integer", "anyOf": [{"minimum": 1000}, {"maximum": 10}]},
            "name": {"type": "string", "allOf": [{"minLength": 2}, {"pattern": "^[a-z]+$"}]},
            "size": {"x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}]}}}}});
    validate(&schema, &obj)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn junctors_pass_when_their_branches_do() {
    let obj = json!({"spec": {"path": "/", "port": 8080, "name": "web", "size": "1Gi"}});
    assert_eq!(junctor_messages(obj), Vec::<String>::new());
    let obj = json!({"spec": {"regex": ".*", "port": 5, "size": 3}});
    assert_eq!(junctor_messages(obj), Vec::<String>::new());
}

#[test]
fn one_of_reports_none_or_several_and_the_best_branch() {
    assert_eq!(
        junctor_messages(json!({"spec": {}})),
        [
            r#"<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid"#,
            "spec.path: Required value",
        ]
    );
    assert_eq!(
        junctor_messages(json!({"spec": {"path": "/", "regex": "/"}})),
        [
            r#"<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
}

#[test]
fn any_of_all_of_and_not() {
    assert_eq!(
        junctor_messages(json!({"spec": {"path": "/", "port": 80}})),
        [
            r#"<nil>: Invalid value: "": "spec.port" must validate at least one schema (anyOf)"#,
            "spec.port: Invalid value: 80: spec.port in body should be greater than or equal to 1000",
        ]
    );
    assert_eq!(
        junctor_messages(json!({"spec": {"path": "/", "name": "A"}})),
        [
            r#"spec.name: Invalid value: "A": spec.name in body should be at least 2 chars long"#,
            r#"spec.name: Invalid value: "A": spec.name in body should match '^[a-z]+$'"#,
            r#"<nil>: Invalid value: "": "spec.name" must validate all the schemas (allOf). None validated"#,
        ]
    );
    assert_eq!(
        junctor_messages(json!({"spec": {"path": "/", "name": "ab1"}})),
        [
            r#"spec.name: Invalid value: "ab1": spec.name in body should match '^[a-z]+$'"#,
            r#"<nil>: Invalid value: "": "spec.name" must validate all the schemas (allOf)"#,
        ]
    );
    assert_eq!(
        junctor_messages(json!({"spec": {"path": "/", "legacy": "x"}})),
        [r#"<nil>: Invalid value: "": "spec" must not validate the schema (not)"#]
    );
}

#[test]
fn rules_run_only_over_values_of_the_right_type() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"port": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.port > 1024", "message": "unprivileged ports only"}]}}});
    let rules = crate::rules::Rules::new(&schema);
    let messages = |obj: Value| -> Vec<String> {
        validate_with_rules(&schema, &rules, &obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        messages(json!({"spec": {"port": 80}})),
        [r#"spec: Invalid value: "object": unprivileged ports only"#]
    );
    assert_eq!(
        messages(json!({"spec": {"port": "80"}})),
        [
            r#"spec.port: Invalid value: "string": spec.port in body must be of type integer: "string""#,
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
}
