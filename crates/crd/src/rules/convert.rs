//! A JSON value as CEL sees it under its schema (k8s.io/apiserver/pkg/cel/common values.go):
//! `number` is a double, `date-time` strings are timestamps,
//! properties are escaped (`namespace` is `__namespace__`, `a-b` is `a__dash__b`), map keys
//! from additionalProperties are not, and an embedded resource's or the root's metadata shows
//! only its name and generateName.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use serde_json::Value;

/// CEL's reserved words: a property so named is reached as `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a property has in CEL, or none if CEL cannot name it.
pub(super) fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// `v` as CEL sees it at a node with `schema`; `resource` marks the root or an embedded
/// resource, whose apiVersion, kind and metadata are always there.
pub(super) fn to_cel(schema: &Value, v: &Value, resource: bool) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (schema["type"].as_str(), n.as_i64()) {
            (Some("number"), _) | (_, None) => cel::Value::Float(n.as_f64().unwrap_or_default()),
            (_, Some(i)) => cel::Value::Int(i),
        },
        Value::String(s) => string(schema, s),
        Value::Array(items) => cel::Value::List(Arc::new(
            items
                .iter()
                .map(|item| to_cel(&schema["items"], item, embedded(&schema["items"])))
                .collect(),
        )),
        Value::Object(fields) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut out = HashMap::new();
            for (name, value) in fields {
                let (key, sub) = match (props.and_then(|p| p.get(name)), additional) {
                    _ if resource && name == "metadata" => {
                        out.insert(Key::from(name.as_str()), metadata(value));
                        continue;
                    }
                    (Some(sub), _) => (escape(name), sub),
                    (None, Some(sub)) => (Some(name.clone()), sub),
                    // Unknown fields kept by x-kubernetes-preserve-unknown-fields.
                    (None, None) => (Some(name.clone()), &Value::Null),
                };
                if let Some(key) = key {
                    out.insert(Key::from(key), to_cel(sub, value, embedded(sub)));
                }
            }
            cel::Value::Map(Map::from(out))
        }
    }
}

fn embedded(schema: &Value) -> bool {
    schema["x-kubernetes-embedded-resource"] == true
}

fn string(schema: &Value, s: &str) -> cel::Value {
    let text = || cel::Value::String(Arc::new(s.to_string()));
    match schema["format"].as_str() {
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(s)
            .map(cel::Value::Timestamp)
            .unwrap_or_else(|_| text()),
        _ => text(),
    }
}

fn metadata(v: &Value) -> cel::Value {
    let mut out = HashMap::new();
    for field in ["name", "generateName"] {
        if let Some(s) = v[field].as_str() {
            out.insert(
                Key::from(field),
                cel::Value::String(Arc::new(s.to_string())),
            );
        }
    }
    cel::Value::Map(Map::from(out))
}
