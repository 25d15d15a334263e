//! Every binding resolved to its role's rules, indexed by subject: what kube-apiserver's RBAC
//! authorizer reads from its informer caches. Built once per change of any RBAC object, then
//! read by every request without touching the objects again.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::api::rbac::v1::{RoleRef, Subject};
use serde_json::Value;

use crate::{rules, Attributes, UserInfo};

/// An authorizer's answer. RBAC never denies outright: it allows or has no opinion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with kube-apiserver's reason text (which binding allowed it).
    Allow(String),
    NoOpinion,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// One binding's rules, for the namespace it applies in (None: a ClusterRoleBinding).
#[derive(Debug, Clone)]
struct Grant {
    namespace: Option<String>,
    rules: Arc<[PolicyRule]>,
    /// `ClusterRoleBinding "x" of ClusterRole "y"`, for reasons.
    source: Arc<str>,
}

/// The RBAC objects a graph is built from, as stored (JSON values).
#[derive(Debug, Default, Clone, Copy)]
pub struct Objects<'a> {
    pub roles: &'a [&'a Value],
    pub cluster_roles: &'a [&'a Value],
    pub role_bindings: &'a [&'a Value],
    pub cluster_role_bindings: &'a [&'a Value],
}

fn decode<T: serde::de::DeserializeOwned>(values: &[&Value]) -> Vec<T> {
    // A stored object that does not decode grants nothing (validation keeps them out).
    values
        .iter()
        .filter_map(|v| serde_json::from_value((*v).clone()).ok())
        .collect()
}

/// Grants indexed by user name and by group name; service accounts are users
/// (`system:serviceaccount:<ns>:<name>`).
#[derive(Debug, Default)]
pub struct Graph {
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
    /// Each Role's rules by namespace and name, and each ClusterRole's by name, decoded once.
    roles: HashMap<(String, String), Arc<[PolicyRule]>>,
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
}

impl Graph {
    pub fn build(objects: Objects<'_>) -> Graph {
        let roles: HashMap<(String, String), Arc<[PolicyRule]>> = decode::<Role>(objects.roles)
            .into_iter()
            .map(|r| {
                let key = (
                    r.metadata.namespace.unwrap_or_default(),
                    r.metadata.name.unwrap_or_default(),
                );
                (key, r.rules.unwrap_or_default().into())
            })
            .collect();
        let cluster_roles: HashMap<String, Arc<[PolicyRule]>> =
            decode::<ClusterRole>(objects.cluster_roles)
                .into_iter()
                .map(|r| {
                    let rules = r.rules.unwrap_or_default().into();
                    (r.metadata.name.unwrap_or_default(), rules)
                })
                .collect();
        let resolve =
            |namespace: Option<&str>, role: &RoleRef| match (role.kind.as_str(), namespace) {
                ("ClusterRole", _) => cluster_roles.get(&role.name).cloned(),
                ("Role", Some(ns)) => roles.get(&(ns.to_string(), role.name.clone())).cloned(),
                _ => None,
            };
        let mut graph = Graph::default();
        for b in decode::<ClusterRoleBinding>(objects.cluster_role_bindings) {
            let name = b.metadata.name.unwrap_or_default();
            if let Some(rules) = resolve(None, &b.role_ref) {
                let source = format!(
                    "ClusterRoleBinding {name:?} of ClusterRole {:?}",
                    b.role_ref.name
                );
                graph.add(None, rules, source.into(), b.subjects.unwrap_or_default());
            }
        }
        for b in decode::<RoleBinding>(objects.role_bindings) {
            let ns = b.metadata.namespace.unwrap_or_default();
            let name = b.metadata.name.unwrap_or_default();
            if let Some(rules) = resolve(Some(&ns), &b.role_ref) {
                let source = format!(
                    "RoleBinding \"{name}/{ns}\" of {} {:?}",
                    b.role_ref.kind, b.role_ref.name
                );
                graph.add(
                    Some(ns),
                    rules,
                    source.into(),
                    b.subjects.unwrap_or_default(),
                );
            }
        }
        graph.roles = roles;
        graph.cluster_roles = cluster_roles;
        graph
    }

    /// The rules of the Role (`namespace`, `name`) or, for `kind` ClusterRole, of the
    /// ClusterRole `name`; None if it does not exist.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Arc<[PolicyRule]>> {
        match kind {
            "ClusterRole" => self.cluster_roles.get(name).cloned(),
            "Role" => self
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned(),
            _ => None,
        }
    }

    fn add(
        &mut self,
        namespace: Option<String>,
        rules: Arc<[PolicyRule]>,
        source: Arc<str>,
        subjects: Vec<Subject>,
    ) {
        for s in subjects {
            let (index, key) = match s.kind.as_str() {
                "User" => (&mut self.by_user, s.name),
                "Group" => (&mut self.by_group, s.name),
                "ServiceAccount" => {
                    // A RoleBinding's service account without a namespace is in the binding's.
                    let ns = s
                        .namespace
                        .or_else(|| namespace.clone())
                        .unwrap_or_default();
                    (
                        &mut self.by_user,
                        format!("system:serviceaccount:{ns}:{}", s.name),
                    )
                }
                _ => continue,
            };
            index.entry(key).or_default().push(Grant {
                namespace: namespace.clone(),
                rules: rules.clone(),
                source: source.clone(),
            });
        }
    }

    /// The grants that reach `user`, with the subject each came through.
    fn grants<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = (&'a Grant, String)> {
        let direct = self
            .by_user
            .get(&user.name)
            .into_iter()
            .flatten()
            .map(|g| (g, subject_text(user)));
        let groups = user.groups.iter().flat_map(move |group| {
            self.by_group
                .get(group)
                .into_iter()
                .flatten()
                .map(move |g| (g, format!("Group {group:?}")))
        });
        direct.chain(groups)
    }

    /// Whether a binding of `user` allows the request.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        for (grant, subject) in self.grants(user) {
            let applies = match &grant.namespace {
                None => true,
                Some(ns) => *ns == a.namespace,
            };
            if applies && grant.rules.iter().any(|r| rules::allows(r, a)) {
                return Decision::Allow(format!("RBAC: allowed by {} to {subject}", grant.source));
            }
        }
        Decision::NoOpinion
    }

    /// Every rule `user` holds in `namespace` (cluster-wide bindings included); the owner's
    /// side of the escalation check and of SelfSubjectRulesReview.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.grants(user)
            .filter(|(g, _)| g.namespace.as_deref().is_none_or(|ns| ns == namespace))
            .flat_map(|(g, _)| g.rules.iter().cloned())
            .collect()
    }
}

fn subject_text(user: &UserInfo) -> String {
    match user.service_account() {
        Some((ns, name)) => format!("ServiceAccount \"{name}/{ns}\""),
        None => format!("User {:?}", user.name),
    }
}

#[cfg(test)]
mod tests;
