//! Pruning: fields a structural schema does not specify are dropped, as kube-apiserver drops
//! them before storing, unless `x-kubernetes-preserve-unknown-fields` keeps them. The dropped
//! paths feed `fieldValidation` (Strict refuses them, Warn reports them).

use serde_json::Value;

use crate::path::{child, index};

/// Removes the fields `schema` does not know from `obj`; returns their dotted paths. The root's
/// apiVersion, kind and metadata stay, as they do in embedded resources.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    walk(schema, obj, "", true, &mut unknown);
    unknown
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn walk(schema: &Value, v: &mut Value, path: &str, resource: bool, unknown: &mut Vec<String>) {
    match v {
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keep_all =
                preserves(schema) || additional.is_some_and(|a| a != &Value::Bool(false));
            let mut dropped = Vec::new();
            for (name, value) in fields.iter_mut() {
                let here = child(path, name);
                if resource && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match props.and_then(|p| p.get(name)) {
                    Some(sub) => walk(sub, value, &here, embedded(sub), unknown),
                    None => match additional.filter(|a| a.is_object()) {
                        Some(sub) => walk(sub, value, &here, embedded(sub), unknown),
                        None if keep_all => {}
                        None => {
                            dropped.push(name.clone());
                            unknown.push(here);
                        }
                    },
                }
            }
            for name in dropped {
                fields.remove(&name);
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(sub, item, &index(path, i), embedded(sub), unknown);
                }
            }
        }
        _ => {}
    }
}

fn embedded(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_go_and_are_reported() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "rules": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "properties": {"spec": {"type": "object"}}}
            }}
        }});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "bogus": 1,
            "spec": {"rules": [{"name": "r", "weight": 3}], "labels": {"a": "b"},
                "raw": {"anything": {"deep": 1}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1}},
            "status": {}});
        let unknown = prune(&schema, &mut obj);
        assert_eq!(
            unknown,
            [
                "bogus",
                "spec.rules[0].weight",
                "spec.template.extra",
                "status"
            ]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                "spec": {"rules": [{"name": "r"}], "labels": {"a": "b"},
                    "raw": {"anything": {"deep": 1}},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
        );
    }

    #[test]
    fn preserve_at_the_root_keeps_everything() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut obj = json!({"spec": {"x": 1}});
        assert!(prune(&schema, &mut obj).is_empty());
        assert_eq!(obj, json!({"spec": {"x": 1}}));
    }
}
