//! Field selectors: apimachinery's `fields.ParseSelector` plus the apiserver's per-kind label
//! conversion, matched against objects.

use std::fmt;

use kinet_types::{ApiError, Resource};
use serde_json::Value;

use crate::field_attrs::{self, Unsupported};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector: the AND of `field=value` / `field!=value` terms for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSelector {
    resource: Resource,
    terms: Vec<Term>,
}

/// Splits on commas not escaped with a backslash (the backslashes stay).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if in_slash => in_slash = false,
            '\\' => in_slash = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator; `!=` and `==` are tried before `=` at each position.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a `fieldSelector` for `resource`. Syntax errors and labels the kind does not support
    /// are 400 BadRequest with kube-apiserver's text.
    pub fn parse(resource: &Resource, s: &str) -> Result<FieldSelector, ApiError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape(rhs).map_err(ApiError::bad_request)?;
            terms.push(Term {
                field: field.to_string(),
                value,
                negated: op == "!=",
            });
        }
        // The apiserver converts labels only after the whole selector parsed.
        let (supported, unsupported) = field_attrs::supported(resource);
        for t in &mut terms {
            if !supported.contains(&t.field.as_str()) {
                let msg = match unsupported {
                    Unsupported::NotSupported => format!("field label not supported: {}", t.field),
                    Unsupported::DefaultMeta => format!(
                        "{:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        t.field
                    ),
                };
                return Err(ApiError::bad_request(msg));
            }
            t.field = field_attrs::canonical(resource, &t.field);
        }
        Ok(FieldSelector {
            resource: *resource,
            terms,
        })
    }

    /// Whether the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `obj` (an object of the selector's resource) is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_attrs::value(&self.resource, obj, &t.field);
            (have == t.value) != t.negated
        })
    }

    /// The value a term requires with `=`, if any (lets storage narrow by name or namespace).
    pub fn requires_exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            let escaped = t
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            write!(f, "{}{op}{escaped}", t.field)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;
    use serde_json::json;

    fn res(group: &str, plural: &str) -> &'static Resource {
        lookup(group, "v1", plural).unwrap()
    }

    #[test]
    fn parse_errors() {
        let pods = res("", "pods");
        let cases = [
            ("foo=bar", "field label not supported: foo"),
            (
                "status.phase",
                "invalid selector: 'status.phase'; can't understand 'status.phase'",
            ),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (
                "metadata.name=a=b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "metadata.name=a\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "metadata.name=a\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
        ];
        for (input, want) in cases {
            let e = FieldSelector::parse(pods, input).unwrap_err();
            assert_eq!(
                (e.code, e.reason, e.message.as_str()),
                (400, "BadRequest", want),
                "{input}"
            );
        }
        let e = FieldSelector::parse(res("apps", "deployments"), "spec.replicas=1").unwrap_err();
        assert_eq!(
            e.message,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let e = FieldSelector::parse(res("", "nodes"), "metadata.namespace=x").unwrap_err();
        assert_eq!(e.message, "field label not supported: metadata.namespace");
    }

    #[test]
    fn pods_match() {
        let pods = res("", "pods");
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}]}
        });
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-2", false),
            ("metadata.namespace=default,status.phase=Running", true),
            ("status.phase!=Running", false),
            ("spec.nodeName=node-a", true),
            ("spec.host=node-a", true),
            ("spec.nodeName=", false),
            ("spec.hostNetwork=false", true),
            ("status.podIP=10.244.1.5", true),
            ("status.nominatedNodeName=", true),
            ("spec.schedulerName!=x", true),
        ];
        for (sel, want) in cases {
            assert_eq!(
                FieldSelector::parse(pods, sel).unwrap().matches(&pod),
                want,
                "{sel}"
            );
        }
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(FieldSelector::parse(pods, "spec.nodeName=")
            .unwrap()
            .matches(&unscheduled));
        assert_eq!(
            FieldSelector::parse(pods, "spec.host=n1")
                .unwrap()
                .to_string(),
            "spec.nodeName=n1"
        );
    }

    #[test]
    fn other_kinds_match() {
        let ev = json!({
            "metadata": {"name": "web.17", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Scheduled", "type": "Normal", "reportingComponent": "default-scheduler"
        });
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let rs = json!({"metadata": {"name": "r", "namespace": "d"}, "status": {}});
        let secret = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"});
        let svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}});
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        let cases: &[(&str, &str, &Value, &str, bool)] = &[
            (
                "",
                "events",
                &ev,
                "involvedObject.kind=Pod,involvedObject.name=web",
                true,
            ),
            ("", "events", &ev, "involvedObject.uid=", true),
            ("", "events", &ev, "source=default-scheduler", true),
            ("", "events", &ev, "type!=Normal", false),
            ("", "nodes", &node, "spec.unschedulable=true", true),
            ("", "nodes", &node, "metadata.name=n2", false),
            ("apps", "replicasets", &rs, "status.replicas=0", true),
            ("", "secrets", &secret, "type=Opaque", true),
            (
                "",
                "services",
                &svc,
                "spec.type=NodePort,spec.clusterIP=10.96.0.10",
                true,
            ),
            ("", "namespaces", &ns, "status.phase=Active", true),
            ("", "configmaps", &secret, "metadata.namespace=d", true),
        ];
        for (group, plural, obj, sel, want) in cases {
            let s = FieldSelector::parse(res(group, plural), sel).unwrap();
            assert_eq!(s.matches(obj), *want, "{plural} {sel}");
        }
    }

    #[test]
    fn escapes_and_exact() {
        let cms = res("", "configmaps");
        let s = FieldSelector::parse(cms, "metadata.name=a\\,b,metadata.namespace=x").unwrap();
        assert_eq!(s.requires_exact("metadata.name"), Some("a,b"));
        assert_eq!(s.requires_exact("metadata.namespace"), Some("x"));
        assert!(s.matches(&json!({"metadata": {"name": "a,b", "namespace": "x"}})));
        assert_eq!(s.to_string(), "metadata.name=a\\,b,metadata.namespace=x");
        assert!(FieldSelector::parse(cms, "").unwrap().is_empty());
    }
}
