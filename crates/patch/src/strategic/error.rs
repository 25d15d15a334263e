//! Strategic merge failures and how kube-apiserver answers them
//! (`interpretStrategicMergePatchError` in handlers/patch.go): the malformed-directive errors of
//! `mergepatch` are 400, lists of lists are 422 with the generic message, and every other error
//! is a plain Go error that becomes a 500 with an empty reason and the error text.

use kinet_types::ApiError;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum SmpError {
    /// `mergepatch.ErrBadPatchFormatFor*` and friends: 400 with this text.
    BadRequest(&'static str),
    /// `mergepatch.ErrNoListOfLists`: 422.
    NoListOfLists,
    /// Any other error: 500 with this text.
    Other(String),
}

pub const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
pub const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
pub const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

impl SmpError {
    /// `mergepatch.ErrNoMergeKey`.
    pub fn no_merge_key(item: &Value, key: &str) -> Self {
        SmpError::Other(format!(
            "map: {} does not contain declared merge key: {key}",
            go_fmt(item)
        ))
    }

    /// `mergepatch.ErrBadPatchType`.
    pub fn bad_patch_type(directive: &Value, map: &Value) -> Self {
        SmpError::Other(format!(
            "unknown patch type: {} in map: {}",
            go_fmt(directive),
            go_fmt(map)
        ))
    }

    /// `mergepatch.ErrBadArgType`.
    pub fn bad_arg_type(expected: &str, actual: &Value) -> Self {
        SmpError::Other(format!(
            "expected a {expected}, but received a {}",
            go_kind(actual)
        ))
    }
}

impl From<SmpError> for ApiError {
    fn from(e: SmpError) -> Self {
        match e {
            SmpError::BadRequest(msg) => ApiError::bad_request(msg),
            SmpError::NoListOfLists => ApiError {
                code: 422,
                reason: "Invalid",
                message: "the server rejected our request due to an error in our request".into(),
                details: Some(json!({})),
            },
            // StatusReasonUnknown is the empty string.
            SmpError::Other(msg) => ApiError::new(500, "", msg),
        }
    }
}

/// Go's reflect kind name of a decoded JSON value.
pub fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's `%v` of a decoded JSON value: `map[a:1 b:[x y]]`, keys sorted.
pub fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut parts: Vec<(&String, String)> =
                map.iter().map(|(k, v)| (k, go_fmt(v))).collect();
            parts.sort();
            let parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting() {
        let v = json!({"name": "web", "$patch": "bogus", "ports": [80, "x"], "z": null});
        assert_eq!(
            go_fmt(&v),
            "map[$patch:bogus name:web ports:[80 x] z:<nil>]"
        );
    }

    #[test]
    fn status_codes() {
        let bad: ApiError = SmpError::BadRequest(BAD_RETAIN_KEYS).into();
        assert_eq!(
            (bad.code, bad.reason, bad.message.as_str()),
            (400, "BadRequest", BAD_RETAIN_KEYS)
        );
        let lists: ApiError = SmpError::NoListOfLists.into();
        assert_eq!((lists.code, lists.reason), (422, "Invalid"));
        let other: ApiError = SmpError::no_merge_key(&json!({"a": 1}), "name").into();
        assert_eq!(other.code, 500);
        assert_eq!(
            other.message,
            "map: map[a:1] does not contain declared merge key: name"
        );
    }
}
