//! A custom resource checked against its structural schema: the OpenAPI v3 subset
//! kube-apiserver enforces (type, nullable, enum, required, properties, additionalProperties,
//! items, string, number and list bounds, pattern, common formats, list types, and the
//! `allOf`/`anyOf`/`oneOf`/`not` junctors), with its `field.Error` messages. CEL rules
//! (`x-kubernetes-validations`) are the [`crate::rules`] module's.

mod junctors;

use kinet_types::FieldError;
use regex::Regex;
use serde_json::{Map, Value};

use crate::path::{child, index};

/// Every violation of `schema` and its CEL `rules` by `obj` (`old` on update). As upstream, the
/// rules are not evaluated over a value of the wrong type or outside its enum.
pub fn validate_with_rules(
    schema: &Value,
    rules: &crate::rules::Rules,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let (mut errors, blocking) = run(schema, obj);
    if rules.is_empty() {
        return errors;
    }
    if blocking {
        errors.push(FieldError::invalid(
            "<nil>",
            Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else {
        errors.extend(rules.validate(obj, old));
    }
    errors
}

/// Every violation of `schema` by `obj`. The root's apiVersion, kind and metadata are the
/// server's business and are not checked here.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    run(schema, obj).0
}

/// The errors, and whether one blocks CEL rules.
fn run(schema: &Value, obj: &Value) -> (Vec<FieldError>, bool) {
    let mut out = Report::default();
    let rest = match obj.as_object() {
        Some(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| !is_root_meta(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => obj.clone(),
    };
    check(schema, &rest, "", &mut out);
    // kube-openapi reports a message once, however many branches found it.
    let mut seen = std::collections::HashSet::new();
    out.errors.retain(|e| seen.insert(e.to_string()));
    (out.errors, out.blocking)
}

/// The errors found, and how many schema nodes were checked: kube-openapi's `MatchCount`,
/// which picks the branch of an `anyOf`/`oneOf` whose errors are reported.
#[derive(Default)]
struct Report {
    errors: Vec<FieldError>,
    checks: usize,
    /// A value had the wrong type or was not one of an enum's: upstream then skips CEL rules.
    blocking: bool,
}

impl Report {
    fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    fn merge(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.checks += other.checks;
        self.blocking |= other.blocking;
    }

    fn push_blocking(&mut self, e: FieldError) {
        self.blocking = true;
        self.errors.push(e);
    }
}

fn is_root_meta(field: &str) -> bool {
    matches!(field, "apiVersion" | "kind" | "metadata")
}

/// The type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => type_name(v) == other,
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

fn in_body(path: &str, text: impl std::fmt::Display) -> String {
    format!("{path} in body {text}")
}

fn check(schema: &Value, v: &Value, path: &str, out: &mut Report) {
    out.checks += 1;
    if v.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            let ty = schema["type"].as_str().unwrap_or_default();
            out.push_blocking(FieldError::invalid(
                path,
                "null",
                &in_body(path, format!("must be of type {ty}: \"null\"")),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(v.is_string() || has_type(v, "integer")) {
            out.push_blocking(FieldError::invalid(
                path,
                type_name(v),
                &in_body(
                    path,
                    format!("must be of type int-or-string: {:?}", type_name(v)),
                ),
            ));
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        if !has_type(v, ty) {
            out.push_blocking(FieldError::invalid(
                path,
                type_name(v),
                &in_body(path, format!("must be of type {ty}: {:?}", type_name(v))),
            ));
            return;
        }
    }
    junctors::check(schema, v, path, out);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| a.to_string())
                })
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            out.push_blocking(FieldError::not_supported(path, v.clone(), &names));
        }
    }
    match v {
        Value::String(s) => check_string(schema, s, path, out),
        Value::Number(_) => check_number(schema, v, path, out),
        Value::Array(items) => check_array(schema, items, path, out),
        Value::Object(fields) => check_object(schema, fields, path, out),
        _ => {}
    }
}

fn bound(schema: &Value, name: &str) -> Option<u64> {
    schema.get(name).and_then(Value::as_u64)
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Report) {
    let chars = s.chars().count() as u64;
    if let Some(max) = bound(schema, "maxLength").filter(|m| chars > *m) {
        out.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = bound(schema, "minLength").filter(|m| chars < *m) {
        out.push(FieldError::invalid(
            path,
            s,
            &in_body(path, format!("should be at least {min} chars long")),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if Regex::new(pattern).is_ok_and(|re| !re.is_match(s)) {
            out.push(FieldError::invalid(
                path,
                s,
                &in_body(path, format!("should match '{pattern}'")),
            ));
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        if !format_ok(format, s) {
            out.push(FieldError::invalid(
                path,
                s,
                &in_body(path, format!("must be of type {format}: {s:?}")),
            ));
        }
    }
}

/// The formats kube-openapi's default registry checks; others are accepted as they are.
pub fn format_ok(format: &str, s: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, len)| {
            let max = if ip.parse::<Ipv4Addr>().is_ok() {
                32
            } else if ip.parse::<Ipv6Addr>().is_ok() {
                128
            } else {
                return false;
            };
            len.parse::<u8>().is_ok_and(|l| l <= max)
        }),
        "hostname" => {
            s.len() <= 253
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
        }
        "uuid" => Regex::new(r"^(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
            .is_ok_and(|re| re.is_match(s)),
        "date" => Regex::new(r"^\d{4}-\d{2}-\d{2}$").is_ok_and(|re| re.is_match(s)),
        "date-time" => {
            Regex::new(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
                .is_ok_and(|re| re.is_match(s))
        }
        "byte" => {
            s.len().is_multiple_of(4)
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        }
        _ => true,
    }
}

fn check_number(schema: &Value, v: &Value, path: &str, out: &mut Report) {
    let x = v.as_f64().unwrap_or_default();
    let exclusive = |name| flag(schema, name);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let (bad, how) = if exclusive("exclusiveMaximum") {
            (x >= max, "less than")
        } else {
            (x > max, "less than or equal to")
        };
        if bad {
            let shown = &schema["maximum"];
            out.push(FieldError::invalid(
                path,
                v.clone(),
                &in_body(path, format!("should be {how} {shown}")),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let (bad, how) = if exclusive("exclusiveMinimum") {
            (x <= min, "greater than")
        } else {
            (x < min, "greater than or equal to")
        };
        if bad {
            let shown = &schema["minimum"];
            out.push(FieldError::invalid(
                path,
                v.clone(),
                &in_body(path, format!("should be {how} {shown}")),
            ));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, out: &mut Report) {
    let len = items.len() as u64;
    if let Some(max) = bound(schema, "maxItems").filter(|m| len > *m) {
        out.push(FieldError::too_many(path, items.len(), max as usize));
    }
    if let Some(min) = bound(schema, "minItems").filter(|m| len < *m) {
        out.push(FieldError::invalid(
            path,
            Value::Array(items.to_vec()),
            &in_body(path, format!("should have at least {min} items")),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &index(path, i), out);
        }
    }
    check_list_type(schema, items, path, out);
}

/// `x-kubernetes-list-type: set` items and `map` keys must be unique.
fn check_list_type(schema: &Value, items: &[Value], path: &str, out: &mut Report) {
    let key_of = |item: &Value| -> Value {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut out = Map::new();
                for k in keys.iter().filter_map(Value::as_str) {
                    out.insert(k.to_string(), item.get(k).cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            }
            _ => item.clone(),
        }
    };
    if !matches!(
        schema.get("x-kubernetes-list-type").and_then(Value::as_str),
        Some("set" | "map")
    ) {
        return;
    }
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = key_of(item);
        if seen.contains(&key) {
            out.push(FieldError::duplicate(index(path, i), key));
        } else {
            seen.push(key);
        }
    }
}

fn check_object(schema: &Value, fields: &Map<String, Value>, path: &str, out: &mut Report) {
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| !(path.is_empty() && is_root_meta(name)))
    {
        if !fields.contains_key(name) {
            out.push(FieldError::required(child(path, name), ""));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (name, value) in fields {
        let sub = props.and_then(|p| p.get(name)).or(additional);
        if let Some(sub) = sub {
            check(sub, value, &child(path, name), out);
        }
    }
    let count = fields.len() as u64;
    if let Some(max) = bound(schema, "maxProperties").filter(|m| count > *m) {
        out.push(FieldError::too_many(path, fields.len(), max as usize));
    }
    if let Some(min) = bound(schema, "minProperties").filter(|m| count < *m) {
        out.push(FieldError::invalid(
            path,
            count,
            &in_body(path, format!("should have at least {min} properties")),
        ));
    }
}

#[cfg(test)]
mod tests;
