//! The structural rules for `allOf`, `anyOf`, `oneOf` and `not`: inside them a schema may only
//! validate values (no type, default, description, nullable or x-kubernetes extensions), and the
//! fields and items they name must be specified outside them too (apiextensions-apiserver's
//! validateNestedValueValidation and validateStructuralCompleteness).

use kinet_types::FieldError;
use serde_json::{json, Value};

use crate::path::{child, index};

const JUNCTORS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// `anyOf: [{type: integer}, {type: string}]`, the one place a type may appear: the
/// int-or-string pattern, alone or as the first `allOf` branch.
fn is_int_or_string(any_of: Option<&Value>) -> bool {
    any_of == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

/// Checks the junctors of one node of the structural schema.
pub(super) fn check(schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let skip_any_of = is_int_or_string(schema.get("anyOf"));
    let skip_first_all_of_any_of = schema["allOf"]
        .get(0)
        .is_some_and(|first| is_int_or_string(first.get("anyOf")));
    value_validation(schema, path, skip_any_of, skip_first_all_of_any_of, errors);
}

fn value_validation(
    v: &Value,
    path: &str,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    errors: &mut Vec<FieldError>,
) {
    for name in JUNCTORS {
        if name == "anyOf" && skip_any_of {
            continue;
        }
        for (i, branch) in v[name].as_array().into_iter().flatten().enumerate() {
            let skip = name == "allOf" && i == 0 && skip_first_all_of_any_of;
            nested(branch, &index(&child(path, name), i), skip, errors);
        }
    }
    if let Some(not) = v.get("not") {
        nested(not, &child(path, "not"), false, errors);
    }
}

/// One schema under a junctor: value validations only.
fn nested(v: &Value, path: &str, skip_any_of: bool, errors: &mut Vec<FieldError>) {
    value_validation(v, path, skip_any_of, false, errors);
    if let Some(items) = v.get("items") {
        nested(items, &child(path, "items"), false, errors);
    }
    for (name, sub) in v["properties"].as_object().into_iter().flatten() {
        nested(sub, &format!("{path}.properties[{name}]"), false, errors);
    }
    let set = |name: &str| v.get(name).is_some_and(|x| !x.is_null());
    let nonempty = |name: &str| match v.get(name) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let on = |name: &str| v.get(name) == Some(&Value::Bool(true));
    let forbidden = [
        (nonempty("type"), "type", "must be empty to be structural"),
        (
            set("additionalProperties"),
            "additionalProperties",
            "must be undefined to be structural",
        ),
        (
            set("default"),
            "default",
            "must be undefined to be structural",
        ),
        (nonempty("title"), "title", "must be empty to be structural"),
        (
            nonempty("description"),
            "description",
            "must be empty to be structural",
        ),
        (on("nullable"), "nullable", "must be false to be structural"),
        (
            on("x-kubernetes-preserve-unknown-fields"),
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            on("x-kubernetes-embedded-resource"),
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            on("x-kubernetes-int-or-string"),
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            nonempty("x-kubernetes-list-map-keys"),
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            set("x-kubernetes-list-type"),
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            set("x-kubernetes-map-type"),
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        (
            nonempty("x-kubernetes-validations"),
            "x-kubernetes-validations",
            "must be empty to be structural",
        ),
    ];
    for (bad, field, detail) in forbidden {
        if bad {
            errors.push(FieldError::forbidden(child(path, field), detail));
        }
    }
    if v["properties"].get("metadata").is_some() {
        errors.push(FieldError::forbidden(
            format!("{path}.properties[metadata]"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every field and item the root's junctors name is specified in the structural schema too.
/// Upstream checks the root's junctors only, and so does this.
pub(super) fn check_complete(root: &Value, path: &str, errors: &mut Vec<FieldError>) {
    complete_value(root, root, path, path, errors);
}

fn complete_value(v: &Value, s: &Value, s_path: &str, v_path: &str, errors: &mut Vec<FieldError>) {
    if let Some(not) = v.get("not") {
        complete_nested(not, s, s_path, &child(v_path, "not"), errors);
    }
    for name in JUNCTORS {
        for (i, branch) in v[name].as_array().into_iter().flatten().enumerate() {
            complete_nested(branch, s, s_path, &index(&child(v_path, name), i), errors);
        }
    }
}

fn complete_nested(v: &Value, s: &Value, s_path: &str, v_path: &str, errors: &mut Vec<FieldError>) {
    complete_value(v, s, s_path, v_path, errors);
    if let Some(items) = v.get("items") {
        let (s_items, v_items) = (child(s_path, "items"), child(v_path, "items"));
        match s.get("items") {
            Some(s_sub) => complete_nested(items, s_sub, &s_items, &v_items, errors),
            None => errors.push(required_because(&s_items, &v_items)),
        }
    }
    for (name, sub) in v["properties"].as_object().into_iter().flatten() {
        let s_here = format!("{s_path}.properties[{name}]");
        let v_here = format!("{v_path}.properties[{name}]");
        match s["properties"].get(name) {
            Some(s_sub) => complete_nested(sub, s_sub, &s_here, &v_here, errors),
            None => errors.push(required_because(&s_here, &v_here)),
        }
    }
}

fn required_because(s_path: &str, v_path: &str) -> FieldError {
    FieldError::required(s_path, &format!("because it is defined in {v_path}"))
}
