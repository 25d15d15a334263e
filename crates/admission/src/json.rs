//! Small helpers over `serde_json` objects. Bodies have passed `canonicalize` before they are
//! defaulted or validated, so a field of the wrong JSON type is treated as absent.

use serde_json::{Map, Value};

pub type Obj = Map<String, Value>;

/// Sets `key` to `value` when it is absent or null (Go's zero-value check for pointers).
pub fn default_to(m: &mut Obj, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// Sets a string field that is absent, null or "" (Go's `== ""`).
pub fn default_str(m: &mut Obj, key: &str, value: &str) {
    if m.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
        m.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Sets a number field that is absent, null or 0 (Go's `== 0` on a non-pointer int).
pub fn default_int(m: &mut Obj, key: &str, value: i64) {
    if m.get(key).and_then(Value::as_i64).is_none_or(|n| n == 0) {
        m.insert(key.to_string(), Value::from(value));
    }
}

/// The object under `key`, created empty when absent or not an object.
pub fn ensure<'a>(m: &'a mut Obj, key: &str) -> &'a mut Obj {
    let slot = m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Obj::new()));
    if !slot.is_object() {
        *slot = Value::Object(Obj::new());
    }
    slot.as_object_mut().expect("just made an object")
}

/// The object under `key`, if there is one.
pub fn child<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Every object element of the array under `key`.
pub fn items<'a>(m: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Read-only: the string at `key`, "" when absent.
pub fn str_of<'a>(m: &'a Value, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Read-only: the array at `key`, empty when absent.
pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}
