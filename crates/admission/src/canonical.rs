//! What kube-apiserver stores for a write: the body decoded into the kind's typed object and
//! encoded again. Unknown fields are dropped (and reported, for fieldValidation), nulls take
//! Go's meaning, and a body that does not decode is refused with encoding/json's message.

use kinet_types::{ApiError, Resource};
use serde_json::Value;

use crate::{decode, strict, typed};

/// A body in its stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    /// The re-encoded object.
    pub object: Value,
    /// Dotted paths of the input's fields the kind does not know (dropped from `object`).
    pub unknown: Vec<String>,
}

/// Decodes `obj` into the kind's typed struct and encodes it again; kube-apiserver's 400 if it
/// does not decode. apiVersion and kind become the resource's own.
pub fn canonicalize(resource: &Resource, mut obj: Value) -> Result<Canonical, ApiError> {
    typed::prepare(resource, &mut obj);
    match typed::round_trip_kind(resource.kind, typed::Input::Go(&obj)) {
        None => Ok(Canonical {
            object: obj,
            unknown: Vec::new(),
        }),
        Some(Ok(object)) => Ok(Canonical {
            unknown: strict::unknown_fields(&obj, &object),
            object,
        }),
        Some(Err(_)) => Err(decode::decode_error(resource, &obj)),
    }
}

/// The stored form of an object the server built from stored-form parts (strategy, defaults,
/// system fields): re-encoded by moving its values through the typed struct, without the
/// unknown-field report. An error means the server built something the schema does not allow.
pub fn reencode(resource: &Resource, obj: Value) -> Result<Value, serde_json::Error> {
    typed::round_trip_kind(resource.kind, typed::Input::Owned(obj)).unwrap_or_else(|| {
        // Every served kind has one (typed.rs tests it).
        Err(serde::de::Error::custom(format!(
            "{} has no typed struct",
            resource.kind
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;
    use serde_json::json;

    #[test]
    fn a_string_data_value_that_is_not_a_string_is_refused() {
        let secrets = lookup("", "v1", "secrets").unwrap();
        let err = canonicalize(
            secrets,
            json!({"metadata": {"name": "s"}, "stringData": {"a": 1}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.ends_with(
                "cannot unmarshal number into Go struct field Secret.stringData of type string"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn null_selector_value_is_stored_as_empty_string() {
        let svc = lookup("", "v1", "services").unwrap();
        let c = canonicalize(
            svc,
            json!({"metadata": {"name": "s", "creationTimestamp": null},
                   "spec": {"selector": {"a": null}, "ports": [{"port": 80}]}}),
        )
        .unwrap();
        assert_eq!(c.object["spec"]["selector"], json!({"a": ""}));
        assert_eq!(c.object["metadata"], json!({"name": "s"}));
        assert_eq!(c.object["apiVersion"], "v1");
        assert!(c.unknown.is_empty());
    }

    #[test]
    fn unknown_fields_are_dropped_and_reported() {
        let svc = lookup("", "v1", "services").unwrap();
        let c = canonicalize(
            svc,
            json!({"bogus": [[[[[]]]]], "metadata": {"name": "s", "x": 1.5}, "spec": {}}),
        )
        .unwrap();
        assert_eq!(
            c.object,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}})
        );
        assert_eq!(c.unknown, vec!["bogus", "metadata.x"]);
    }

    #[test]
    fn stored_form_is_a_fixed_point() {
        let pod = lookup("", "v1", "pods").unwrap();
        let once = canonicalize(
            pod,
            json!({"metadata": {"name": "p", "labels": {"a": null}},
                   "spec": {"containers": [{"name": "c", "image": "i", "args": [null],
                            "resources": {"limits": {"cpu": 1}}}]}}),
        )
        .unwrap()
        .object;
        let twice = canonicalize(pod, once.clone()).unwrap();
        assert_eq!(twice.object, once);
        assert!(twice.unknown.is_empty());
    }
}
