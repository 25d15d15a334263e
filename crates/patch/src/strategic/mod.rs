//! Strategic merge patch, following apimachinery's `StrategicMergeMapPatch` with the options
//! kube-apiserver uses (`MergeParallelList` and `IgnoreUnmatchedNulls`):
//!
//! - maps merge key by key; `null` deletes a key;
//! - lists tagged `patchStrategy:"merge"` (see [`crate::schema`]) merge items by their merge
//!   key, lists of scalars merge as sets; every other list is replaced;
//! - directives: `$patch: replace|delete` on a map or a list item, `$retainKeys`,
//!   `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//!
//! Where Go would decode the result into a typed struct (dropping stray `$` keys and nulls of
//! new values), values added from the patch are cleaned here instead, since kinet stores JSON.

mod error;
mod list;
mod order;

use kinet_types::{ApiError, Resource};
use serde_json::{Map, Value};

use crate::decode::{go_type_name, parse_json};
use crate::schema::{self, Schema};

pub use error::SmpError;

type Obj = Map<String, Value>;

pub(crate) const PATCH: &str = "$patch";
pub(crate) const RETAIN_KEYS: &str = "$retainKeys";
pub(crate) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
pub(crate) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch body to `current`, an object of `resource`.
pub fn strategic_merge(
    resource: &Resource,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let patch = match parse_json(body).map_err(ApiError::bad_request)? {
        Value::Object(patch) => patch,
        Value::Null => Obj::new(),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type_name(&other)
            )))
        }
    };
    let original = match current {
        Value::Object(map) => map.clone(),
        _ => Obj::new(),
    };
    let merged = merge_value_maps(original, patch, schema::for_resource(resource))?;
    Ok(Value::Object(merged))
}

/// Strategic merge of two decoded maps with an explicit schema; for tests and callers that
/// already hold a decoded patch.
pub fn merge_value_maps(original: Obj, patch: Obj, schema: &Schema) -> Result<Obj, SmpError> {
    merge_map(original, patch, schema)
}

/// `mergeMap`.
fn merge_map(mut original: Obj, mut patch: Obj, schema: &Schema) -> Result<Obj, SmpError> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(PATCH);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Obj::new()),
            _ => Err(SmpError::bad_patch_type(
                directive,
                &Value::Object(patch.clone()),
            )),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    list::merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_v) in patch {
        let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(name) => (name.to_string(), true),
                None => return Err(SmpError::BadRequest(error::BAD_PRIMITIVE_LIST)),
            },
            None => (key, false),
        };
        if patch_v.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let Some(orig_v) = original.get_mut(&key) else {
            if !is_delete_list {
                if let Some(v) = clean_new(patch_v) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        match (orig_v, patch_v) {
            (Value::Object(orig), Value::Object(p)) => {
                let merged = merge_map(std::mem::take(orig), p, schema.struct_field(&key))?;
                *orig = merged;
            }
            (Value::Array(orig), Value::Array(p)) => {
                let strategy = schema.merge_list(&key);
                let merged =
                    list::merge_list_field(std::mem::take(orig), p, strategy, is_delete_list)?;
                *orig = merged;
            }
            (orig, p) if same_kind(orig, &p) => *orig = p,
            (_, p) => {
                if !is_delete_list {
                    match clean_new(p) {
                        Some(v) => original.insert(key, v),
                        None => original.shift_remove(&key),
                    };
                }
            }
        }
    }
    Ok(original)
}

/// Scalars of any type count as one kind: replacing one scalar by another is the same either way.
fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    ) || !(a.is_object() || a.is_array() || b.is_object() || b.is_array())
}

/// `applyRetainKeysDirective`: keys of `original` not listed are dropped, and the patch may not
/// set a key that is not listed.
fn apply_retain_keys(original: &mut Obj, patch: &mut Obj) -> Result<(), SmpError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadRequest(error::BAD_RETAIN_KEYS));
    };
    let listed = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        let directive =
            k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER);
        if !v.is_null() && !directive && !listed(k) {
            return Err(SmpError::BadRequest(error::BAD_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// A value taken from the patch as is: nulls dropped (`discardNullValuesFromPatch`) and
/// directives removed (`removeDirectives`); `None` when the value itself is a `$patch` map.
pub(crate) fn clean_new(mut value: Value) -> Option<Value> {
    crate::json::prune_nulls(&mut value);
    remove_directives(value)
}

fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(PATCH) => None,
        Value::Object(map) => Some(Value::Object(clean_map(map))),
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Drops directive keys from a map that is used as is; a typed decode would ignore them.
fn clean_map(map: Obj) -> Obj {
    map.into_iter()
        .filter(|(k, _)| !is_directive_key(k))
        .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
        .collect()
}

fn is_directive_key(k: &str) -> bool {
    k == PATCH
        || k == RETAIN_KEYS
        || k.starts_with(SET_ELEMENT_ORDER)
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

#[cfg(test)]
mod tests;
