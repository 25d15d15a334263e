//! The add-ons `kinet up` deploys through the API, as kubeadm does: cluster DNS. The
//! objects keep kubeadm's names (ServiceAccount and Deployment `coredns`, Service `kube-dns`
//! at 10.96.0.10, label `k8s-app=kube-dns`), so what users know from real clusters holds;
//! the pods run kinet's own DNS server (image [`kinet_images::DNS_IMAGE`]).
//!
//! The objects are pure functions of [`DnsAddon`] in [`kinet_manifests::dns`] (which
//! `kinet manifests dns` prints too); [`ensure_cluster_dns`] creates what is
//! missing and brings the Deployment's container back to the desired one, so running it on
//! every `up` converges and never duplicates.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::json;

pub use kinet_manifests::dns::*;
pub(crate) use kinet_manifests::typed;

/// The add-ons' Deployments, `(namespace, name)`: `up` returns once each is Available.
/// Cluster DNS comes first.
pub fn deployments(info: &crate::state::ClusterInfo) -> Vec<(&'static str, &'static str)> {
    let mut all = Vec::new();
    if !info.no_dns {
        all.push((NAMESPACE, DEPLOYMENT));
    }
    if !info.no_ingress {
        all.push((crate::ingress_addon::NAMESPACE, crate::ingress_addon::NAME));
    }
    all
}

/// Creates an add-on's ClusterRole and ClusterRoleBinding unless present.
pub(crate) async fn ensure_rbac(
    client: &kube::Client,
    rbac: (ClusterRole, ClusterRoleBinding),
) -> Result<()> {
    let name = rbac.0.metadata.name.clone().unwrap_or_default();
    ensure(&Api::<ClusterRole>::all(client.clone()), &rbac.0)
        .await
        .with_context(|| format!("ClusterRole {name}"))?;
    ensure(&Api::<ClusterRoleBinding>::all(client.clone()), &rbac.1)
        .await
        .with_context(|| format!("ClusterRoleBinding {name}"))?;
    Ok(())
}

/// Creates `obj` unless an object of that name exists; returns the stored object.
pub(crate) async fn ensure<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    if let Some(existing) = api.get_opt(&name).await? {
        return Ok(existing);
    }
    match api.create(&PostParams::default(), obj).await {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&name).await?),
        other => Ok(other?),
    }
}

/// Deploys cluster DNS: ServiceAccount, Service and Deployment in kube-system. Existing
/// objects are kept; the Deployment's container is patched when its image or arguments
/// (the upstreams) differ from `addon`.
pub async fn ensure_cluster_dns(client: &kube::Client, addon: &DnsAddon) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&sas, &service_account())
        .await
        .context("ServiceAccount kube-system/coredns")?;
    ensure_rbac(client, rbac()).await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&svcs, &service(addon))
        .await
        .context("Service kube-system/kube-dns")?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let want = deployment(addon);
    let have = ensure(&deploys, &want)
        .await
        .context("Deployment kube-system/coredns")?;
    ensure_container(&deploys, &have, container(addon))
        .await
        .context("updating Deployment kube-system/coredns")
}

/// Brings an add-on Deployment's container back to `want` when its image or arguments differ.
pub(crate) async fn ensure_container(
    deploys: &Api<Deployment>,
    have: &Deployment,
    want: Container,
) -> Result<()> {
    let current = have
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == want.name))
        .is_some_and(|c| c.image == want.image && c.args == want.args);
    if !current {
        // A merge patch replaces the container list: the add-on owns it.
        let patch = json!({"spec": {"template": {"spec": {"containers": [want]}}}});
        let name = have.metadata.name.as_deref().unwrap_or_default();
        deploys
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// `kinet up`'s step: the add-ons for a cluster with nodes, configured from its record.
pub async fn deploy(client: &kube::Client, info: &crate::state::ClusterInfo) -> Result<()> {
    if !info.no_dns {
        let step = crate::progress::Step::start("Deploying cluster DNS");
        ensure_cluster_dns(client, &DnsAddon::new(info.upstream_dns.clone())).await?;
        step.done();
    }
    if !info.no_ingress {
        let step = crate::progress::Step::start("Deploying the ingress controller");
        crate::ingress_addon::ensure_ingress(client).await?;
        step.done();
    }
    Ok(())
}

#[cfg(test)]
#[path = "addons_tests.rs"]
mod tests;
