//! RFC 6902 JSON patch and RFC 7386 JSON merge patch, with kube-apiserver's error answers
//! (k8s.io/apiserver/pkg/endpoints/handlers/patch.go, `applyJSPatch`):
//! - a body that does not decode: 400 `error decoding patch: <json error>`;
//! - a JSON patch operation that fails (a `test` that does not match, a missing path, an unknown
//!   op): 422 `Invalid` with the generic message and empty details, exactly as
//!   `NewGenericServerResponse(422, ...)` renders it;
//! - more than 10000 operations: 413;
//! - a merge patch that is JSON `null`: 400 `Invalid JSON Patch`.

use kinet_types::ApiError;
use serde_json::{json, Map, Value};

use crate::decode::{go_type_name, parse_json};

/// kube-apiserver's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 JSON patch body to `current`.
pub fn json_patch(current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let ops = match parse_json(body).map_err(decode_error)? {
        Value::Null => Vec::new(),
        Value::Array(ops) => ops,
        other => {
            return Err(decode_error(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                go_type_name(&other)
            )))
        }
    };
    for op in &ops {
        check_op_shape(op)?;
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    // Go decodes operations loosely and fails only when applying them, so an unknown op or a
    // missing value is a 422 like any other failing operation.
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(|_| operation_failed())?;
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &patch).map_err(|_| operation_failed())?;
    ensure_object(doc)
}

/// Applies an RFC 7386 JSON merge patch body to `current`: `null` deletes a key, objects merge
/// recursively, anything else replaces.
pub fn merge_patch(current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch = parse_json(body).map_err(decode_error)?;
    match patch {
        Value::Object(_) => {}
        Value::Null => return Err(ApiError::bad_request("Invalid JSON Patch")),
        other => {
            return Err(decode_error(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type_name(&other)
            )))
        }
    }
    let mut doc = current.clone();
    merge_value(&mut doc, patch);
    ensure_object(doc)
}

/// Strict decoding of each operation into `{op, path, from, value}`: only the element type and
/// the string fields can fail to decode.
fn check_op_shape(op: &Value) -> Result<(), ApiError> {
    let Value::Object(fields) = op else {
        return Err(decode_error(format!(
            "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
            go_type_name(op)
        )));
    };
    for name in ["op", "path", "from"] {
        match fields.get(name) {
            None | Some(Value::String(_)) | Some(Value::Null) => {}
            Some(other) => {
                return Err(decode_error(format!(
                "json: cannot unmarshal {} into Go struct field jsonPatchOp.{name} of type string",
                go_type_name(other)
            )))
            }
        }
    }
    Ok(())
}

/// evanphx/json-patch's merge: nulls inside newly added values are pruned, as kube-apiserver
/// does, so `{"metadata":{"labels":{"a":null}}}` on an object without labels adds no key.
pub(crate) fn merge_value(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    let Value::Object(doc) = target else {
        let mut patch = Value::Object(patch);
        prune_nulls(&mut patch);
        *target = patch;
        return;
    };
    merge_maps(doc, patch);
}

fn merge_maps(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            doc.shift_remove(&key);
            continue;
        }
        match doc.get_mut(&key) {
            Some(existing) if !existing.is_null() => merge_value(existing, value),
            _ => {
                let mut value = value;
                prune_nulls(&mut value);
                doc.insert(key, value);
            }
        }
    }
}

/// Drops null members of objects (recursively, also inside arrays); null array elements stay.
pub(crate) fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

fn ensure_object(doc: Value) -> Result<Value, ApiError> {
    if doc.is_object() {
        Ok(doc)
    } else {
        Err(ApiError::bad_request(format!(
            "the patched object must be a JSON object, got {}",
            go_type_name(&doc)
        )))
    }
}

fn decode_error(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding patch: {msg}"))
}

/// `NewGenericServerResponse(422, "", GroupResource{}, "", msg, 0, false)`: the message of the
/// failing operation is not reported, only the generic text.
fn operation_failed() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: "the server rejected our request due to an error in our request".to_string(),
        details: Some(json!({})),
    }
}
