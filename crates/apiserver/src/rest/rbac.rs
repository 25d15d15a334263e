//! What RBAC writes add to the REST verbs: the escalation check (a user may grant only rules
//! they hold, unless allowed to `escalate` a role or `bind` it), the graph cache's
//! invalidation, and ClusterRole aggregation (kube-controller-manager's
//! `clusterrole-aggregation` controller, run here right after each RBAC write).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kinet_rbac::rules::{escalation_message, uncovered};
use kinet_rbac::{Attributes, UserInfo, GROUP};
use kinet_store::Mutation;
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use serde_json::Value;

use super::{object_key, Api};

impl Api {
    /// Refuses a Role, ClusterRole or binding that grants more than `user` holds in its
    /// namespace, as kube-apiserver's RBAC registry does.
    pub(super) fn check_escalation(
        &self,
        user: &UserInfo,
        resource: &Resource,
        obj: &Value,
    ) -> Result<()> {
        if resource.group != GROUP {
            return Ok(());
        }
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let may = |verb: &str, plural: &str, name: &str| {
            let a = Attributes::resource(verb, GROUP, plural, "", namespace, name);
            self.authz.authorize(&self.store, user, &a).allowed()
        };
        let (granted, exempt) = match resource.kind {
            "Role" | "ClusterRole" => {
                let escalate = may("escalate", resource.plural, name);
                if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) && !escalate {
                    // Aggregated rules are the controller's to fill: it may grant anything.
                    return Err(ApiError::forbidden(format!(
                        "{} {name:?} is forbidden: must have cluster-admin privileges to use the aggregationRule",
                        resource.qualified_resource()
                    )));
                } else {
                    (rules_of(obj), escalate)
                }
            }
            _ => {
                let role_kind = obj["roleRef"]["kind"].as_str().unwrap_or_default();
                let role_name = obj["roleRef"]["name"].as_str().unwrap_or_default();
                let plural = if role_kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                // A binding to a role that does not exist yet grants nothing yet.
                let rules = self
                    .authz
                    .role_rules(&self.store, role_kind, namespace, role_name);
                (rules, may("bind", plural, role_name))
            }
        };
        if exempt {
            return Ok(());
        }
        let held = self.authz.rules_for(&self.store, user, namespace);
        let missing = uncovered(&held, &granted);
        if missing.is_empty() {
            return Ok(());
        }
        let mut err = ApiError::forbidden(format!(
            "{} {name:?} is forbidden: {}",
            resource.qualified_resource(),
            escalation_message(user, &missing)
        ));
        err.details =
            Some(serde_json::json!({"name": name, "group": GROUP, "kind": resource.plural}));
        Err(err)
    }

    /// The NodeRestriction admission plugin's check of a node agent's create, whose name the
    /// Node authorizer could not see.
    pub(super) fn check_node_restriction(
        user: &UserInfo,
        resource: &Resource,
        obj: &Value,
    ) -> Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        kinet_rbac::node::admit_create(user, resource.group, resource.plural, name).map_err(
            |reason| {
                ApiError::forbidden(format!(
                    "{} {name:?} is forbidden: {reason}",
                    resource.qualified_resource()
                ))
            },
        )
    }

    /// After any RBAC write: the graph is stale, and aggregated ClusterRoles may need rules.
    pub(crate) async fn rbac_changed(&self) {
        self.authz.invalidate();
        let stored = crate::authz::cluster_roles(&self.store);
        let values: Vec<&Value> = stored.iter().map(|s| &s.value).collect();
        let pending = kinet_rbac::aggregate::pending(&values);
        if pending.is_empty() {
            return;
        }
        let resource = kinet_types::registry::lookup(GROUP, "v1", "clusterroles")
            .expect("clusterroles are served");
        for (name, rules) in pending {
            let rules = serde_json::to_value(rules).unwrap_or_default();
            let written = self
                .store
                .write(&object_key(resource, None, &name), move |current| {
                    let mut role = current
                        .cloned()
                        .ok_or_else(|| ApiError::not_found(resource, "aggregated"))?;
                    role["rules"] = rules;
                    Ok(Mutation::Put(role))
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(%name, error = %e.message, "could not aggregate a ClusterRole");
            }
        }
        self.authz.invalidate();
    }
}

fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    match obj["kind"].as_str() {
        Some("ClusterRole") => serde_json::from_value::<ClusterRole>(obj.clone())
            .ok()
            .and_then(|r| r.rules),
        _ => serde_json::from_value::<Role>(obj.clone())
            .ok()
            .and_then(|r| r.rules),
    }
    .unwrap_or_default()
}
