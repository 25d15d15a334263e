//! `allOf`, `anyOf`, `oneOf` and `not`, as kube-openapi's schemaPropsValidator checks them.
//!
//! Their failures are composite errors, which kube-apiserver reports against no field:
//! `<nil>: Invalid value: "": "spec.x" must validate one and only one schema (oneOf). Found
//! none valid`, followed by the errors of the branch that matched best.

use kinet_types::FieldError;
use serde_json::Value;

use super::Report;

fn branches<'a>(schema: &'a Value, name: &str) -> &'a [Value] {
    schema
        .get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn branch(schema: &Value, v: &Value, path: &str) -> Report {
    let mut out = Report::default();
    super::check(schema, v, path, &mut out);
    out
}

/// A composite error: upstream's `field.Invalid(nil, "", …)`, printed with a nil path.
fn composite(path: &str, text: &str) -> FieldError {
    FieldError::invalid("<nil>", "", &format!("{path:?} {text}"))
}

/// Whether `candidate` matched more of its schema than the best failure so far.
fn better(candidate: &Report, best: &Option<Report>) -> bool {
    best.as_ref().is_none_or(|b| candidate.checks > b.checks)
}

pub(super) fn check(schema: &Value, v: &Value, path: &str, out: &mut Report) {
    any_of(branches(schema, "anyOf"), v, path, out);
    one_of(branches(schema, "oneOf"), v, path, out);
    all_of(branches(schema, "allOf"), v, path, out);
    if let Some(not) = schema.get("not").filter(|n| n.is_object()) {
        if branch(not, v, path).errors.is_empty() {
            out.push(composite(path, "must not validate the schema (not)"));
        }
    }
}

fn any_of(schemas: &[Value], v: &Value, path: &str, out: &mut Report) {
    if schemas.is_empty() {
        return;
    }
    let mut best = None;
    for s in schemas {
        let result = branch(s, v, path);
        if result.errors.is_empty() {
            out.merge(result);
            return;
        }
        if better(&result, &best) {
            best = Some(result);
        }
    }
    out.push(composite(path, "must validate at least one schema (anyOf)"));
    out.merge(best.unwrap_or_default());
}

fn one_of(schemas: &[Value], v: &Value, path: &str, out: &mut Report) {
    if schemas.is_empty() {
        return;
    }
    let mut valid = 0;
    let mut best = None;
    for s in schemas {
        let result = branch(s, v, path);
        if result.errors.is_empty() {
            valid += 1;
            best = None;
        } else if valid == 0 && better(&result, &best) {
            best = Some(result);
        }
    }
    if valid == 1 {
        return;
    }
    let found = if valid == 0 {
        "Found none valid".to_string()
    } else {
        format!("Found {valid} valid alternatives")
    };
    out.push(composite(
        path,
        &format!("must validate one and only one schema (oneOf). {found}"),
    ));
    out.merge(best.unwrap_or_default());
}

fn all_of(schemas: &[Value], v: &Value, path: &str, out: &mut Report) {
    if schemas.is_empty() {
        return;
    }
    let mut valid = 0;
    for s in schemas {
        let result = branch(s, v, path);
        valid += usize::from(result.errors.is_empty());
        out.merge(result);
    }
    if valid != schemas.len() {
        let none = if valid == 0 { ". None validated" } else { "" };
        out.push(composite(
            path,
            &format!("must validate all the schemas (allOf){none}"),
        ));
    }
}
