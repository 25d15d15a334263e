//! What kube-apiserver creates for itself at start: the system namespaces, the `kubernetes`
//! Service, and its Endpoints and EndpointSlice naming the advertised address (the first listen
//! address: `kinet serve` lists the underlay gateway first when the cluster has nodes, so pods
//! reach the API through the Service). Existing namespaces and Service are left alone; the
//! endpoints are rewritten when the advertised address changed, as kube-apiserver's endpoint
//! reconciler does.

use kinet_types::registry::lookup;
use kinet_types::wellknown::SERVICE_NAME_LABEL;
use kinet_types::Result;
use serde_json::{json, Value};

use std::net::SocketAddr;

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
    ensure(api, "", "services", Some("default"), svc).await?;
    // A loopback address is no endpoint (validation refuses it, as it refuses kube-apiserver's
    // loopback --advertise-address): a cluster without nodes has no pods to reach it anyway.
    match api.server_address.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() && !addr.ip().is_unspecified() => {
            advertise(api, addr).await
        }
        _ => Ok(()),
    }
}

/// The `kubernetes` Endpoints and EndpointSlice: `addr` only.
pub fn endpoints(addr: SocketAddr) -> (Value, Value) {
    let ip = addr.ip().to_string();
    let port = addr.port();
    let labels = json!({SERVICE_NAME_LABEL: "kubernetes", "endpointslice.kubernetes.io/managed-by": "kinet-apiserver"});
    let eps = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "addressType": if addr.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    (eps, slice)
}

async fn advertise(api: &Api, addr: SocketAddr) -> Result<()> {
    let (eps, slice) = endpoints(addr);
    reconcile(api, "", "endpoints", eps, &["subsets"]).await?;
    reconcile(
        api,
        "discovery.k8s.io",
        "endpointslices",
        slice,
        &["addressType", "endpoints", "ports"],
    )
    .await
}

/// Creates `obj`, or rewrites the `fields` of the stored one when they differ.
async fn reconcile(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServeConfig;

    fn api_at(dir: &std::path::Path, listen: &str) -> std::sync::Arc<Api> {
        crate::open_api(&ServeConfig {
            authorization: true,
            cluster: "t".into(),
            data_dir: dir.to_path_buf(),
            etcd: None,
            listen: vec![listen.parse().unwrap()],
            ca_cert_pem: String::new(),
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
            tokens: vec![],
            admission: Default::default(),
            metrics: None,
            health: Default::default(),
        })
        .unwrap()
    }

    fn stored(api: &Api, group: &str, plural: &str) -> Value {
        let r = lookup(group, "v1", plural).unwrap();
        api.store
            .get(&object_key(r, Some("default"), "kubernetes"))
            .expect("stored")
            .value
            .clone()
    }

    #[tokio::test]
    async fn kubernetes_endpoints_follow_the_advertised_address() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        {
            let api = api_at(&dir, "172.18.0.1:6443");
            run(&api, 6443).await.unwrap();
            let eps = stored(&api, "", "endpoints");
            assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "172.18.0.1");
            assert_eq!(eps["subsets"][0]["ports"][0]["port"], 6443);
            let slice = stored(&api, "discovery.k8s.io", "endpointslices");
            assert_eq!(slice["endpoints"][0]["addresses"][0], "172.18.0.1");
            assert_eq!(
                slice["metadata"]["labels"]["kubernetes.io/service-name"],
                "kubernetes"
            );
            // Idempotent.
            run(&api, 6443).await.unwrap();
        }
        // A restart advertising another address rewrites both.
        let api = api_at(&dir, "172.19.0.1:7000");
        run(&api, 7000).await.unwrap();
        let eps = stored(&api, "", "endpoints");
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "172.19.0.1");
        let slice = stored(&api, "discovery.k8s.io", "endpointslices");
        assert_eq!(slice["ports"][0]["port"], 7000);
        // Loopback is not advertised.
        let other = tmp.path().join("other");
        let api = api_at(&other, "127.0.0.1:7000");
        run(&api, 7000).await.unwrap();
        let r = lookup("", "v1", "endpoints").unwrap();
        assert!(api
            .store
            .get(&object_key(r, Some("default"), "kubernetes"))
            .is_none());
    }
}
