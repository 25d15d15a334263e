//! Roles and bindings (`pkg/apis/rbac/validation`): rules name verbs and what they apply to,
//! bindings name a role of a supported kind and supported subjects, and `roleRef` never changes.

use kinet_types::FieldError;
use serde_json::Value;

use crate::json::{arr, str_of};

const GROUP: &str = "rbac.authorization.k8s.io";

pub fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match kind {
        "Role" => rules(obj, true, errs),
        // An aggregated ClusterRole's rules are the controller's to fill.
        "ClusterRole" => rules(obj, false, errs),
        "RoleBinding" => binding(obj, &["Role", "ClusterRole"], true, errs),
        _ => binding(obj, &["ClusterRole"], false, errs),
    }
    if let Some(old) = old.filter(|_| kind.ends_with("Binding")) {
        if obj.get("roleRef") != old.get("roleRef") {
            let value = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            errs.push(FieldError::invalid(
                "roleRef",
                value,
                "cannot change roleRef",
            ));
        }
    }
}

fn rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        let path = format!("rules[{i}]");
        if arr(rule, "verbs").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(rule, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, "apiGroups").is_empty() || !arr(rule, "resources").is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "resources").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn binding(obj: &Value, kinds: &[&str], namespaced: bool, errs: &mut Vec<FieldError>) {
    let role = &obj["roleRef"];
    let group = str_of(role, "apiGroup");
    if group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            group,
            &[GROUP],
        ));
    }
    let kind = str_of(role, "kind");
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported("roleRef.kind", kind, kinds));
    }
    if str_of(role, "name").is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    }
    for (i, subject) in arr(obj, "subjects").iter().enumerate() {
        let path = format!("subjects[{i}]");
        if str_of(subject, "name").is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        }
        let group = str_of(subject, "apiGroup");
        match str_of(subject, "kind") {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[""],
                    ));
                }
                if !namespaced && str_of(subject, "namespace").is_empty() {
                    errs.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(kind: &str, obj: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(kind, &obj, old.as_ref(), &mut errs);
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.reason()))
            .collect()
    }

    #[test]
    fn rules_name_verbs_and_targets() {
        let ok = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        assert!(errors("Role", ok, None).is_empty());
        let urls = json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert!(errors("ClusterRole", urls.clone(), None).is_empty());
        assert_eq!(
            errors("Role", urls, None),
            ["rules[0].nonResourceURLs: FieldValueInvalid"]
        );
        let bad = json!({"rules": [{"resources": ["pods"], "verbs": []}]});
        assert_eq!(
            errors("ClusterRole", bad, None),
            [
                "rules[0].verbs: FieldValueRequired",
                "rules[0].apiGroups: FieldValueRequired"
            ]
        );
    }

    #[test]
    fn bindings_and_immutable_role_ref() {
        let b = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "x"},
                         {"kind": "User", "apiGroup": GROUP, "name": "alice"}]});
        assert!(errors("RoleBinding", b.clone(), None).is_empty());
        assert_eq!(
            errors("ClusterRoleBinding", b.clone(), None),
            ["subjects[0].namespace: FieldValueRequired"]
        );
        let mut changed = b.clone();
        changed["roleRef"]["name"] = json!("edit");
        assert_eq!(
            errors("RoleBinding", changed, Some(b.clone())),
            ["roleRef: FieldValueInvalid"]
        );
        let role = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"}});
        assert_eq!(
            errors("ClusterRoleBinding", role, None),
            ["roleRef.kind: FieldValueNotSupported"]
        );
        let odd = json!({"roleRef": {"apiGroup": "x", "kind": "Role", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r"}]});
        assert_eq!(
            errors("RoleBinding", odd, None),
            [
                "roleRef.apiGroup: FieldValueNotSupported",
                "roleRef.name: FieldValueRequired",
                "subjects[0].kind: FieldValueNotSupported"
            ]
        );
    }
}
