//! fieldValidation=Strict: fields the kind's schema does not know.

use kinet_types::{ApiError, Resource};
use serde_json::Value;

use crate::typed;

/// Dotted paths (`spec.foo`, `spec.containers[0].bogus`) of input fields that do not survive a
/// decode/encode round trip through the kind's typed struct. A body that does not decode at all
/// has no unknown fields to report here: [`crate::decode_check`] reports it.
pub fn unknown_fields(resource: &Resource, obj: &Value) -> Vec<String> {
    let input = typed::prepare(resource, obj);
    let Some(Ok(output)) = typed::round_trip_kind(resource.kind, input.clone()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff(&input, &output, "", &mut out);
    out
}

fn diff(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(w) => diff(v, w, &child, out),
                    None if !v.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(v, w, &format!("{path}[{i}]"), out);
            }
        }
        // Scalars (and IntOrString, Quantity, times) may be re-rendered; they are known.
        _ => {}
    }
}

/// kube-apiserver's 400 for unknown fields under fieldValidation=Strict.
pub fn strict_decoding_error(resource: &Resource, unknown: &[String]) -> ApiError {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
        resource.kind,
        resource.version,
        resource.kind,
        fields.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;
    use serde_json::json;

    #[test]
    fn unknown_fields_table() {
        let cases = [
            (
                "services",
                json!({"metadata": {"name": "a"}, "spec": {"foo": 1, "ports": [{"port": 80}]}}),
                vec!["spec.foo"],
            ),
            (
                "pods",
                json!({"metadata": {"name": "a", "labels": {"any": "x"}}, "spec": {"containers": [
                    {"name": "a", "image": "i"}, {"name": "b", "image": "i", "bogus": true,
                     "resources": {"limits": {"cpu": 1}}}]}}),
                vec!["spec.containers[1].bogus"],
            ),
            (
                "pods",
                json!({"metadata": {"name": "a", "nope": null}, "spec": {"containers": []}}),
                vec![],
            ),
            (
                "deployments",
                json!({"spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": "25%", "x": 1}},
                       "template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostIP2": ""}]}]}}},
                       "status": {"what": 1}, "extra": {}}),
                vec![
                    "spec.strategy.rollingUpdate.x",
                    "spec.template.spec.containers[0].ports[0].hostIP2",
                    "status.what",
                    "extra",
                ],
            ),
            (
                "configmaps",
                json!({"data": {"k": "v"}, "binaryData": {"b": "aGk="}, "immutable": false}),
                vec![],
            ),
            (
                "secrets",
                json!({"data": {"k": "aGk="}, "stringData": {"a": "b"}, "type": "Opaque", "typo": "x"}),
                vec!["typo"],
            ),
        ];
        for (plural, body, want) in cases {
            let r = lookup(lookup_group(plural), "v1", plural).unwrap();
            assert_eq!(unknown_fields(r, &body), want, "{plural} {body}");
        }
    }

    fn lookup_group(plural: &str) -> &'static str {
        if plural == "deployments" {
            "apps"
        } else {
            ""
        }
    }

    #[test]
    fn strict_error_text() {
        let svc = lookup("", "v1", "services").unwrap();
        let e = strict_decoding_error(svc, &["spec.foo".into()]);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\""
        );
        let d = lookup("apps", "v1", "deployments").unwrap();
        let e = strict_decoding_error(d, &["spec.a".into(), "spec.b".into()]);
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.a\", unknown field \"spec.b\""
        );
    }
}
