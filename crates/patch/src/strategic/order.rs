//! Element order of merged lists, as apimachinery keeps it (design proposal "preserve order in
//! strategic merge patch"): items named in the patch follow the patch (or its
//! `$setElementOrder` list), server-only items keep their live order, and the two runs are
//! interleaved by the live order where both sides appear in it.

use serde_json::Value;

use super::error::SmpError;

/// Whether list items are objects (matched by merge key) or scalars (matched by value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Map,
    Scalar,
}

/// `sliceElementType`: every item must be of one kind, and lists of lists are refused.
pub fn element_kind(lists: &[&[Value]]) -> Result<ItemKind, SmpError> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = match item {
            Value::Array(_) if kind.is_none() => return Err(SmpError::NoListOfLists),
            Value::Array(_) => None,
            Value::Object(_) => Some(ItemKind::Map),
            _ => Some(ItemKind::Scalar),
        };
        match (kind, this) {
            (None, Some(k)) => kind = Some(k),
            (Some(k), Some(t)) if k == t => {}
            _ => {
                let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                return Err(SmpError::Other(format!(
                    "list element types are not identical: {}",
                    super::error::go_fmt(&Value::Array(all))
                )));
            }
        }
    }
    kind.ok_or_else(|| SmpError::Other("no elements in any of the given slices".into()))
}

/// Splits `items` into those present in `by` and the rest, keeping order.
pub fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let (mut present, mut absent) = (Vec::new(), Vec::new());
    for item in items {
        let found = match key {
            None => by.contains(&item),
            Some(k) => {
                let value = item
                    .get(k)
                    .ok_or_else(|| SmpError::no_merge_key(&item, k))?;
                find_by_key(by, k, value)?.is_some()
            }
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// `findMapInSliceBasedOnKeyValue`: the index of the first map whose `key` equals `value`.
pub fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, SmpError> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(SmpError::Other(format!("value for key {i} is not a map.")));
        };
        if map.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// `normalizeElementOrder`: sorts patch items by `patch_order` and server-only items by
/// `server_order`, then interleaves them.
pub fn normalize(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, SmpError> {
    let patch_items = sort_by_order(patch_items, patch_order, key, kind)?;
    let server_only = sort_by_order(server_only, server_order, key, kind)?;
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        key,
        kind,
    ))
}

/// `normalizeSliceOrder`: an insertion sort by position in `order` (Go's `sort.SliceStable`
/// runs one for short lists); `$patch: delete` items go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, SmpError> {
    let (mut items, deletes) = match (kind, key) {
        (ItemKind::Map, Some(k)) => {
            for item in items.iter().chain(order) {
                if item.get(k).is_none() {
                    return Err(SmpError::no_merge_key(item, k));
                }
            }
            items
                .into_iter()
                .partition(|i| i.get("$patch") != Some(&Value::from("delete")))
        }
        _ => (items, Vec::new()),
    };
    // Items missing from `order` compare as "less", exactly like the Go comparator.
    let less = |a: &Value, b: &Value| match (index(order, a, key), index(order, b, key)) {
        (Some(ia), Some(ib)) => ia < ib,
        _ => true,
    };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deletes);
    Ok(items)
}

/// `mergeSortedSlice`: walks both sorted runs, taking the left (server-only) item first only
/// when the live order puts it before the right (patch) item.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
    _kind: ItemKind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (index(server_order, l, key), index(server_order, r, key)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Position of `item` in `list`: by merge key for maps, by value for scalars.
fn index(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let wanted = item.get(k);
            list.iter().position(|v| v.get(k) == wanted)
        }
        None => list.iter().position(|v| v == item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().map(|v| v["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn patch_order_wins_and_server_items_keep_their_place() {
        let live = vec![
            json!({"name": "a"}),
            json!({"name": "b"}),
            json!({"name": "c"}),
        ];
        // The patch orders c before a; b is server-only and, as in Go, goes first because the
        // live order puts it before c, the first patch item.
        let order = vec![json!({"name": "c"}), json!({"name": "a"})];
        let (patch_items, server_only) = partition(live.clone(), &order, Some("name")).unwrap();
        let out = normalize(
            patch_items,
            server_only,
            &order,
            &live,
            Some("name"),
            ItemKind::Map,
        )
        .unwrap();
        assert_eq!(names(&out), ["b", "c", "a"]);
    }

    #[test]
    fn new_items_follow_the_patch() {
        let live = vec![json!({"name": "a"}), json!({"name": "b"})];
        let merged = vec![
            json!({"name": "a"}),
            json!({"name": "b"}),
            json!({"name": "n"}),
        ];
        let order = vec![json!({"name": "n"}), json!({"name": "b"})];
        let (p, s) = partition(merged, &order, Some("name")).unwrap();
        let out = normalize(p, s, &order, &live, Some("name"), ItemKind::Map).unwrap();
        // n is not live, so nothing orders a before it: Go takes the patch item first.
        assert_eq!(names(&out), ["n", "a", "b"]);
    }

    #[test]
    fn element_kinds() {
        let maps = [json!({"a": 1})];
        let scalars = [json!("x")];
        assert_eq!(element_kind(&[&maps, &[]]).unwrap(), ItemKind::Map);
        assert_eq!(element_kind(&[&[], &scalars]).unwrap(), ItemKind::Scalar);
        assert!(matches!(
            element_kind(&[&maps, &scalars]),
            Err(SmpError::Other(_))
        ));
        assert_eq!(element_kind(&[&[json!([1])]]), Err(SmpError::NoListOfLists));
        assert!(element_kind(&[&[], &[]]).is_err());
    }
}
