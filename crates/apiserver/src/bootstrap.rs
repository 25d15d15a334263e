//! What kube-apiserver creates for itself at start: the system namespaces, the bootstrap RBAC
//! policy and the `kubernetes` Service. Existing objects are left alone. The Service's
//! endpoints are [`crate::peers`]' work.

use kinet_types::registry::lookup;
use kinet_types::Result;
use serde_json::{json, Value};

use kinet_store::Mutation;

use crate::rest::{object_key, Api};

/// The namespaces every cluster has.
pub const NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn ensure(
    api: &Api,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    mut obj: Value,
) -> Result<()> {
    let resource = lookup(group, "v1", plural).expect("bootstrap kinds are served");
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if api
        .store
        .get(&object_key(resource, namespace, &name))
        .is_some()
    {
        return Ok(());
    }
    api.prepare_new(resource, &mut obj, namespace)?;
    match api.insert(resource, obj, false).await {
        Err(e) if e.reason != "AlreadyExists" => Err(e),
        _ => Ok(()),
    }
}

/// Creates the default namespaces and the `kubernetes` Service pointing at port `api_port`.
pub async fn run(api: &Api, api_port: u16) -> Result<()> {
    for ns in NAMESPACES {
        ensure(
            api,
            "",
            "namespaces",
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    for class in kinet_admission::priority::system_classes() {
        ensure(api, "scheduling.k8s.io", "priorityclasses", None, class).await?;
    }
    // kube-apiserver's bootstrap policy; aggregation then fills admin, edit and view.
    for role in kinet_rbac::bootstrap::cluster_roles() {
        ensure(api, kinet_rbac::GROUP, "clusterroles", None, role).await?;
    }
    for binding in kinet_rbac::bootstrap::cluster_role_bindings() {
        ensure(api, kinet_rbac::GROUP, "clusterrolebindings", None, binding).await?;
    }
    let (roles, bindings) = kinet_rbac::bootstrap::namespaced();
    let system = Some(kinet_rbac::controllers::NAMESPACE);
    for role in roles {
        ensure(api, kinet_rbac::GROUP, "roles", system, role).await?;
    }
    for binding in bindings {
        ensure(api, kinet_rbac::GROUP, "rolebindings", system, binding).await?;
    }
    // The controllers' accounts, as kube-controller-manager creates them for its clients.
    for (user, _) in kinet_rbac::controllers::identities() {
        let user = kinet_rbac::UserInfo::new(user, &[]);
        let Some((ns, name)) = user.service_account() else {
            continue;
        };
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns}});
        ensure(api, "", "serviceaccounts", Some(ns), account).await?;
    }
    api.rbac_changed().await;
    let ip = api.network.kubernetes_ip().to_string();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
    });
    ensure(api, "", "services", Some("default"), svc).await
}

/// Creates `obj`, or rewrites the `fields` of the stored one when they differ.
pub(crate) async fn reconcile(
    api: &Api,
    group: &str,
    plural: &str,
    obj: Value,
    fields: &'static [&'static str],
) -> Result<()> {
    let resource = lookup(group, "v1", plural).expect("bootstrap kinds are served");
    let key = object_key(resource, Some("default"), "kubernetes");
    // Compared with what is stored, so in the stored form.
    let obj = crate::rest::stored_form(resource, obj)?;
    if api.store.get(&key).is_none() {
        return ensure(api, group, plural, Some("default"), obj).await;
    }
    api.store
        .write(&key, move |current| {
            let Some(current) = current else {
                return Ok(Mutation::Unchanged);
            };
            if fields.iter().all(|f| current[*f] == obj[*f]) {
                return Ok(Mutation::Unchanged);
            }
            let mut next = current.clone();
            for f in fields {
                next[*f] = obj[*f].clone();
            }
            Ok(Mutation::Put(next))
        })
        .await
        .map(drop)
}
