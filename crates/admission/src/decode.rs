//! Bodies that do not decode into the kind's Go type: kube-apiserver answers 400 with
//! encoding/json's `cannot unmarshal` text. serde stops at the first error without a path, so
//! the offending field is found by pruning the body down to the one branch that still fails,
//! and the Go struct names along it by asking the decoder what it expected there.

use kinet_types::{ApiError, Resource};
use serde_json::{json, Value};

use crate::typed;

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// kube-apiserver's 400 for `doc` (apiVersion and kind already the resource's), which does not
/// decode into the kind's type.
pub fn decode_error(resource: &Resource, doc: &Value) -> ApiError {
    let detail = describe(resource.kind, doc);
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: {detail}",
        resource.kind, resource.version, resource.kind
    ))
}

fn decode_err(kind: &str, v: &Value) -> Option<String> {
    match typed::round_trip_kind(kind, typed::Input::Go(v)) {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &v[k.as_str()],
        Seg::Index(i) => &v[*i],
    })
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

fn with_node(doc: &Value, path: &[Seg], node: Value) -> Value {
    let mut d = doc.clone();
    *at_mut(&mut d, path) = node;
    d
}

/// The path of the first failing field, and the pruned body that still fails because of it.
fn failing_path(kind: &str, doc: &Value) -> (Vec<Seg>, Value) {
    let mut pruned = doc.clone();
    let mut path = Vec::new();
    loop {
        let node = at(&pruned, &path).clone();
        let (empty, children): (Value, Vec<(Seg, Value)>) = match &node {
            Value::Object(m) => (
                json!({}),
                m.iter()
                    .map(|(k, v)| (Seg::Key(k.clone()), json!({ k.clone(): v.clone() })))
                    .collect(),
            ),
            Value::Array(a) => (
                json!([]),
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (Seg::Index(i), json!([v.clone()])))
                    .collect(),
            ),
            _ => return (path, pruned),
        };
        // The container itself is of the wrong type.
        if decode_err(kind, &with_node(&pruned, &path, empty)).is_some() {
            return (path, pruned);
        }
        let next = children.into_iter().find_map(|(seg, only)| {
            let trial = with_node(&pruned, &path, only);
            decode_err(kind, &trial).map(|_| (seg, trial))
        });
        match next {
            // Kept alone, an array element moves to index 0.
            Some((seg, trial)) => {
                pruned = trial;
                path.push(match seg {
                    Seg::Index(_) => Seg::Index(0),
                    key => key,
                });
            }
            None => return (path, pruned),
        }
    }
}

/// What the decoder expected at `path` if handed a string there.
fn expected_at(kind: &str, doc: &Value, path: &[Seg], probe: Value) -> Option<String> {
    let msg = decode_err(kind, &with_node(doc, path, probe))?;
    msg.rsplit_once("expected ").map(|(_, e)| e.to_string())
}

fn go_type(kind: &str, doc: &Value, path: &[Seg], expected: &str) -> String {
    match expected {
        "i32" => "int32".into(),
        "i64" => "int64".into(),
        "u32" => "uint32".into(),
        "f64" => "float64".into(),
        "a boolean" => "bool".into(),
        "a string" | "a borrowed string" => "string".into(),
        "a base64-encoded string" => "[]uint8".into(),
        "Quantity" => "resource.Quantity".into(),
        "IntOrString" => "intstr.IntOrString".into(),
        "a sequence" => match expected_at(kind, doc, path, json!(["x"])) {
            Some(e) => format!("[]{}", go_type(kind, doc, path, &e)),
            None => "[]string".into(),
        },
        "a map" => match expected_at(kind, doc, path, json!({"k": "x"})) {
            Some(e) => format!("map[string]{}", go_type(kind, doc, path, &e)),
            None => "map[string]string".into(),
        },
        e if e.starts_with(|c: char| c.is_ascii_uppercase()) => format!("v1.{e}"),
        e => e.to_string(),
    }
}

fn describe(kind: &str, doc: &Value) -> String {
    let (path, pruned) = failing_path(kind, doc);
    let msg = decode_err(kind, &pruned).unwrap_or_default();
    let Some((_, expected)) = msg.rsplit_once("expected ") else {
        return msg; // not a type mismatch (bad base64, bad time): serde's own words
    };
    let ty = go_type(kind, &pruned, &path, expected);
    let value = match at(&pruned, &path) {
        Value::Object(_) => "object".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::String(_) => "string".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Null => "null".to_string(),
        Value::Number(n)
            if ty.starts_with("int") || ty.starts_with("uint") || ty.starts_with("float") =>
        {
            format!("number {n}")
        }
        Value::Number(_) => "number".to_string(),
    };
    if path.is_empty() {
        return format!("json: cannot unmarshal {value} into Go value of type {ty}");
    }
    // Go names the innermost struct and the JSON field names from the root, skipping map keys
    // and array indices.
    let mut owner = kind.to_string();
    let mut fields = Vec::new();
    for (i, seg) in path.iter().enumerate() {
        let Seg::Key(k) = seg else { continue };
        match expected_at(kind, &pruned, &path[..i], json!("x")) {
            Some(e) if e == "a map" => {}
            Some(e) => {
                owner = e;
                fields.push(k.as_str());
            }
            None => fields.push(k.as_str()),
        }
    }
    format!(
        "json: cannot unmarshal {value} into Go struct field {owner}.{} of type {ty}",
        fields.join(".")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;

    fn check(group: &str, plural: &str, body: Value) -> Result<(), String> {
        let r = lookup(group, "v1", plural).unwrap();
        crate::canonicalize(r, body).map(drop).map_err(|e| {
            assert_eq!(e.code, 400);
            assert_eq!(e.reason, "BadRequest");
            e.message
        })
    }

    #[test]
    fn decode_errors_table() {
        let cases = [
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "a"}, "spec": {"replicas": "three"}}),
                "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
            (
                "",
                "pods",
                json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": 5}]}}),
                "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field Container.spec.containers.image of type string",
            ),
            (
                "",
                "services",
                json!({"spec": {"ports": [{"port": 1.5}]}}),
                "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32",
            ),
            (
                "",
                "services",
                json!({"metadata": {"labels": {"a": 1}}}),
                "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
            ),
            (
                "",
                "pods",
                json!({"spec": {"containers": {"name": "a"}}}),
                "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container",
            ),
            (
                "",
                "configmaps",
                json!({"data": "x"}),
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ConfigMap.data of type map[string]string",
            ),
        ];
        for (group, plural, body, want) in cases {
            assert_eq!(
                check(group, plural, body.clone()),
                Err(want.to_string()),
                "{body}"
            );
        }
    }

    #[test]
    fn good_bodies_decode() {
        let ok = [
            (
                "apps",
                "deployments",
                json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}}}}),
            ),
            (
                "",
                "pods",
                json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}}),
            ),
            (
                "",
                "pods",
                json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}),
            ),
            ("", "secrets", json!({"data": {"a": "aGk="}})),
        ];
        for (group, plural, body) in ok {
            assert_eq!(check(group, plural, body.clone()), Ok(()), "{body}");
        }
    }
}
