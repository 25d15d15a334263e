//! fieldValidation=Strict: fields the kind's schema does not know.

use kinet_types::{ApiError, Resource};
use serde_json::Value;

/// Dotted paths (`spec.foo`, `spec.containers[0].bogus`) of `input` fields that did not survive
/// the decode/encode round trip that made `output`.
pub(crate) fn unknown_fields(input: &Value, output: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(input, output, &mut Vec::new(), &mut out);
    out
}

/// One step of a field path: an object key or an array index.
pub(crate) enum Seg<K> {
    Key(K),
    Index(usize),
}

/// The path is kept as borrowed segments and only rendered for an unknown field.
fn diff<'a>(input: &'a Value, output: &Value, path: &mut Vec<Seg<&'a str>>, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                path.push(Seg::Key(k.as_str()));
                match b.get(k) {
                    Some(w) => diff(v, w, path, out),
                    None if !v.is_null() => out.push(render(path)),
                    None => {}
                }
                path.pop();
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                path.push(Seg::Index(i));
                diff(v, w, path, out);
                path.pop();
            }
        }
        // Scalars (and IntOrString, Quantity, times) may be re-rendered; they are known.
        _ => {}
    }
}

/// The path as kube-apiserver's strict decoder prints it: `spec.containers[0].name`.
pub(crate) fn render<K: AsRef<str>>(path: &[Seg<K>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k.as_ref()),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k.as_ref());
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// What kube-apiserver's strict decoder says about duplicate and unknown fields: the `Warning`
/// texts under fieldValidation=Warn, and the parts of the Strict error.
pub fn field_problems(duplicates: &[String], unknown: &[String]) -> Vec<String> {
    let dup = duplicates.iter().map(|f| format!("duplicate field {f:?}"));
    dup.chain(unknown.iter().map(|f| format!("unknown field {f:?}")))
        .collect()
}

/// kube-apiserver's 400 for [`field_problems`] under fieldValidation=Strict.
pub fn strict_decoding_error(resource: &Resource, problems: &[String]) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
        resource.kind,
        resource.version,
        resource.kind,
        problems.join(", ")
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
            let unknown = crate::canonicalize(r, body.clone()).unwrap().unknown;
            assert_eq!(unknown, want, "{plural} {body}");
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
        let e = strict_decoding_error(svc, &field_problems(&[], &["spec.foo".into()]));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\""
        );
        let d = lookup("apps", "v1", "deployments").unwrap();
        let e = strict_decoding_error(
            d,
            &field_problems(
                &["spec.replicas".into()],
                &["spec.a".into(), "spec.b".into()],
            ),
        );
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: duplicate field \"spec.replicas\", unknown field \"spec.a\", unknown field \"spec.b\""
        );
    }
}
