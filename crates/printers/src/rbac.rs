//! Rows for RoleBindings and ClusterRoleBindings (`printRoleBinding`). Roles and ClusterRoles
//! print name and creation time (`roleColumnDefinitions`), which is the default table.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::util::{arr_at, name, str_at};
use crate::workloads::age;

/// NAME, ROLE (`Kind/name`), AGE, then USERS, GROUPS and SERVICEACCOUNTS (`ns:name`).
pub(crate) fn binding(b: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(b, &["roleRef", "kind"]),
        str_at(b, &["roleRef", "name"])
    );
    let subjects = arr_at(b, &["subjects"]);
    let of_kind = |kind: &str| {
        subjects
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| match kind {
                "ServiceAccount" => {
                    format!("{}:{}", str_at(s, &["namespace"]), str_at(s, &["name"]))
                }
                _ => str_at(s, &["name"]).to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(name(b)),
        json!(role),
        age(b, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}
