//! Defaulting from the schema's `default` values, as kube-apiserver applies them on every
//! read and write: a missing field (or a null one that is not nullable) gets its default, and
//! defaults are then applied inside it too.

use serde_json::Value;

/// Applies every `default` of `schema` to `obj`.
pub fn apply(schema: &Value, obj: &mut Value) {
    match obj {
        Value::Object(fields) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    let Some(default) = sub.get("default") else {
                        continue;
                    };
                    let nullable = sub.get("nullable").and_then(Value::as_bool) == Some(true);
                    match fields.get(name) {
                        None => {
                            fields.insert(name.clone(), default.clone());
                        }
                        Some(Value::Null) if !nullable => {
                            fields.insert(name.clone(), default.clone());
                        }
                        Some(_) => {}
                    }
                }
                for (name, value) in fields.iter_mut() {
                    if let Some(sub) = props.get(name) {
                        apply(sub, value);
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for value in fields.values_mut() {
                    apply(sub, value);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    apply(sub, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_missing_and_null_fields_then_nest() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "default": {},
        "properties": {
            "mode": {"type": "string", "default": "Exact"},
            "opt": {"type": "string", "nullable": true, "default": "x"},
            "rules": {"type": "array", "items": {"type": "object", "properties": {
                "weight": {"type": "integer", "default": 1},
                "match": {"type": "object", "default": {"path": {"type": "PathPrefix"}},
                    "properties": {"path": {"type": "object", "properties": {
                        "value": {"type": "string", "default": "/"}}}}}}}},
            "ports": {"type": "object", "additionalProperties": {"type": "object",
                "properties": {"protocol": {"type": "string", "default": "TCP"}}}}
        }}}});
        let mut empty = json!({});
        apply(&schema, &mut empty);
        assert_eq!(empty, json!({"spec": {"mode": "Exact", "opt": "x"}}));
        let mut obj = json!({"spec": {"mode": null, "opt": null, "rules": [{}, {"weight": 5}],
            "ports": {"http": {}}}});
        apply(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"mode": "Exact", "opt": null,
                "rules": [{"weight": 1, "match": {"path": {"type": "PathPrefix", "value": "/"}}},
                          {"weight": 5, "match": {"path": {"type": "PathPrefix", "value": "/"}}}],
                "ports": {"http": {"protocol": "TCP"}}}})
        );
    }
}
