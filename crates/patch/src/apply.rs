//! Server-side apply (`application/apply-patch+yaml`), simplified.
//!
//! Real server-side apply tracks which manager owns which field (`metadata.managedFields`),
//! reports conflicts between managers and removes fields a manager stops applying. kinet does
//! none of that. Instead:
//! - if the object does not exist, the applied object is the new object;
//! - otherwise the applied object is merged into the stored one: maps merge recursively, lists
//!   that strategic merge merges (see [`crate::schema`]) merge item by item on the same keys
//!   (scalar sets are unioned), every other value is replaced, and an explicit `null` removes
//!   the field.
//!
//! So `kubectl apply --server-side` creates and updates whole objects, but a field or list item
//! deleted from the manifest stays on the object, and there are never apply conflicts.
//! The checks kube-apiserver makes on the body itself are kept: it must decode, its
//! `apiVersion` (and `kind`) must be the resource's, and it may not carry `managedFields`.

use kinet_types::{ApiError, Resource};
use serde_json::{Map, Value};

use crate::decode::parse_json;
use crate::schema::{self, Schema};

/// Server-side apply create-or-update: `current` is `None` when the object does not exist yet.
/// The body is YAML or JSON.
pub fn server_side_apply(
    resource: &Resource,
    current: Option<&Value>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let applied = decode_body(body)?;
    check_type(resource, &applied)?;
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    match current {
        None => {
            let mut created = applied;
            crate::json::prune_nulls(&mut created);
            Ok(created)
        }
        Some(current) => {
            let base = current.as_object().cloned().unwrap_or_default();
            let Value::Object(applied) = applied else {
                unreachable!("checked by decode_body")
            };
            Ok(Value::Object(merge_objects(
                base,
                applied,
                schema::for_resource(resource),
            )))
        }
    }
}

/// JSON first (what kubectl sends), YAML otherwise; the result must be a map.
fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    let value = match parse_json(body) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding YAML: error converting YAML to JSON: yaml: {e}"
            ))
        })?,
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(ApiError::bad_request(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal into Go value of type map[string]interface {}",
        )),
    }
}

/// kube-apiserver's version check, plus a kind check with the same wording.
fn check_type(resource: &Resource, applied: &Value) -> Result<(), ApiError> {
    let expected = resource.api_version();
    let version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if version != expected {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {expected}"
        )));
    }
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "Incorrect kind specified in apply patch. Specified patch kind: {kind}, expected: {}",
            resource.kind
        )));
    }
    Ok(())
}

/// Merges the applied map into the stored one.
fn merge_objects(
    mut base: Map<String, Value>,
    applied: Map<String, Value>,
    schema: &Schema,
) -> Map<String, Value> {
    for (key, value) in applied {
        if value.is_null() {
            base.shift_remove(&key);
            continue;
        }
        let merged = match (base.get_mut(&key).map(std::mem::take), value) {
            (Some(Value::Object(b)), Value::Object(a)) => {
                Value::Object(merge_objects(b, a, schema.struct_field(&key)))
            }
            (Some(Value::Array(b)), Value::Array(a)) => match schema.merge_list(&key) {
                Some((merge_key, elem)) => Value::Array(merge_lists(b, a, merge_key, elem)),
                None => Value::Array(a),
            },
            (_, mut v) => {
                crate::json::prune_nulls(&mut v);
                v
            }
        };
        base.insert(key, merged);
    }
    base
}

/// Items with the same merge key merge; new items are appended; scalars are unioned.
fn merge_lists(
    mut base: Vec<Value>,
    applied: Vec<Value>,
    key: Option<&str>,
    elem: &Schema,
) -> Vec<Value> {
    for item in applied {
        let position = match key {
            Some(k) => item
                .get(k)
                .and_then(|wanted| base.iter().position(|b| b.get(k) == Some(wanted))),
            None => base.iter().position(|b| *b == item),
        };
        match (position, item) {
            (Some(i), Value::Object(a)) => {
                if let Value::Object(b) = std::mem::take(&mut base[i]) {
                    base[i] = Value::Object(merge_objects(b, a, elem));
                }
            }
            (Some(_), _) => {}
            (None, mut item) => {
                crate::json::prune_nulls(&mut item);
                base.push(item);
            }
        }
    }
    base
}
