//! What kube-apiserver creates for itself at start: the system namespaces and the `kubernetes`
//! Service. Existing objects are left alone, so a restart changes nothing.

use kinet_types::registry::lookup;
use kinet_types::Result;
use serde_json::{json, Value};

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
    let ip = api.network.kubernetes_ip().to_string();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
    });
    ensure(api, "", "services", Some("default"), svc).await
}
