//! Lists: `mergeSliceHandler`, `mergeSlice` and the `$setElementOrder` pass
//! (`mergePatchIntoOriginal`) of apimachinery's strategic merge.

use serde_json::Value;

use super::error::{self, SmpError};
use super::order::{self, ItemKind};
use super::{clean_new, merge_map, remove_directives, Obj, PATCH, SET_ELEMENT_ORDER};
use crate::schema::Schema;

/// A list field's strategy: `Some((merge key, item schema))` when it merges.
pub type ListStrategy = Option<(Option<&'static str>, &'static Schema)>;

/// `mergeSliceHandler`: merging lists merge, all others are replaced by the patch list.
pub fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: ListStrategy,
    is_delete_list: bool,
) -> Result<Vec<Value>, SmpError> {
    match strategy {
        Some((key, elem)) => merge_slice(original, patch, key, elem, is_delete_list),
        None => Ok(patch.into_iter().filter_map(remove_directives).collect()),
    }
}

/// `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&str>,
    elem: &Schema,
    is_delete_list: bool,
) -> Result<Vec<Value>, SmpError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = order::element_kind(&[&original, &patch])?;
    let (original, patch, merged) = match kind {
        ItemKind::Scalar if is_delete_list => {
            // `$deleteFromPrimitiveList`: drop the listed values, keep the order.
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        ItemKind::Scalar => {
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(&patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            (original, patch, merged)
        }
        ItemKind::Map => {
            let Some(key) = key else {
                return Err(SmpError::Other(
                    "cannot merge lists without merge key".into(),
                ));
            };
            let (original, patch) = apply_special_elements(original, patch, key)?;
            let merged = merge_by_key(original.clone(), &patch, key, elem)?;
            (original, patch, merged)
        }
    };
    let (patch_items, server_only) = order::partition(merged, &patch, key)?;
    order::normalize(patch_items, server_only, &patch, &original, key, kind)
}

/// `mergeSliceWithSpecialElements`: `$patch: delete` items remove their match from the
/// original, a `$patch: replace` item makes the rest of the patch the whole list.
fn apply_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = item
                    .get(key)
                    .ok_or_else(|| SmpError::no_merge_key(&item, key))?;
                while let Some(i) = order::find_by_key(&original, key, value)? {
                    original.remove(i);
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(SmpError::Other(
                    "merging lists cannot yet be specified in the patch".into(),
                ))
            }
            _ => return Err(SmpError::bad_patch_type(directive, &item)),
        }
    }
    if replace {
        let plain: Vec<Value> = plain.into_iter().filter_map(clean_new).collect();
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// `mergeSliceWithoutSpecialElements`: items with a matching key merge, others are appended.
fn merge_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    elem: &Schema,
) -> Result<Vec<Value>, SmpError> {
    for item in patch {
        let Value::Object(item_map) = item else {
            return Err(SmpError::bad_arg_type("map", item));
        };
        let value = item_map
            .get(key)
            .ok_or_else(|| SmpError::no_merge_key(item, key))?;
        match order::find_by_key(&original, key, value)? {
            Some(i) => {
                let Value::Object(orig) = std::mem::take(&mut original[i]) else {
                    unreachable!("find_by_key only matches maps")
                };
                original[i] = Value::Object(merge_map(orig, item_map.clone(), elem)?);
            }
            None => original.extend(clean_new(item.clone())),
        }
    }
    Ok(original)
}

/// `mergePatchIntoOriginal`: each `$setElementOrder/<list>` merges `<list>` now and sorts the
/// result by the given order; both keys leave the patch.
pub fn merge_set_element_order(
    original: &mut Obj,
    patch: &mut Obj,
    schema: &Schema,
) -> Result<(), SmpError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order_v) = patch.shift_remove(&directive) else {
            continue;
        };
        let Value::Array(order_list) = order_v else {
            return Err(SmpError::bad_arg_type("slice", &order_v));
        };
        let field = match directive
            .strip_prefix(SET_ELEMENT_ORDER)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(field) => field.to_string(),
            None => return Err(SmpError::BadRequest(error::BAD_SET_ELEMENT_ORDER)),
        };
        let orig_list = take_list(original.get(&field))?;
        let patch_list = take_list(patch.get(&field))?;
        let strategy = schema.merge_list(&field);
        let key = strategy.and_then(|(k, _)| k);
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order_list, key)?;

        let orig_items = orig_list.clone().unwrap_or_default();
        let patch_items = patch_list.clone().unwrap_or_default();
        let merged = match (orig_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => p.into_iter().filter_map(remove_directives).collect(),
            (Some(o), Some(p)) => merge_list_field(o, p, strategy, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = order::partition(merged, &order_list, key)?;
        let kind = order::element_kind(&[&orig_items, &patch_items])?;
        let sorted = order::normalize(in_order, server_only, &order_list, &orig_items, key, kind)?;
        original.insert(field.clone(), Value::Array(sorted));
        patch.shift_remove(&field);
    }
    Ok(())
}

fn take_list(v: Option<&Value>) -> Result<Option<Vec<Value>>, SmpError> {
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(SmpError::bad_arg_type("slice", other)),
    }
}

/// `validatePatchWithSetOrderList`: the patch list (ignoring deletions and directives) must be
/// a subsequence of the order list.
fn validate_order(
    patch: &[Value],
    order_list: &[Value],
    key: Option<&str>,
) -> Result<(), SmpError> {
    if patch.is_empty() || order_list.is_empty() {
        return Ok(());
    }
    let candidates: Vec<&Value> = match key {
        Some(_) => {
            if let Some(bad) = patch.iter().find(|v| !v.is_object()) {
                return Err(SmpError::bad_arg_type("map", bad));
            }
            patch
                .iter()
                .filter(|v| v.get(PATCH) != Some(&Value::from("delete")))
                .collect()
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < candidates.len() && oi < order_list.len() {
        let item = candidates[pi];
        if item.get(PATCH).is_some() {
            pi += 1;
            continue;
        }
        let equal = match key {
            None => item == &order_list[oi],
            Some(k) => {
                let a = item.get(k).ok_or_else(|| SmpError::no_merge_key(item, k))?;
                let o = &order_list[oi];
                let b = o.get(k).ok_or_else(|| SmpError::no_merge_key(o, k))?;
                a == b
            }
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < candidates.len() {
        return Err(SmpError::Other(format!(
            "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}",
            error::go_fmt(&Value::Array(patch.to_vec())),
            error::go_fmt(&Value::Array(order_list.to_vec()))
        )));
    }
    Ok(())
}
