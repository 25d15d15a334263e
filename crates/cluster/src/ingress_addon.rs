//! The ingress add-on `kinet up` deploys through the API (unless `--no-ingress`): the
//! objects of [`kinet_manifests::ingress`], whose LoadBalancer Service takes an address from
//! kinet's pool. Ensuring them creates what is missing and brings the container back to the
//! desired one.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::Api;

pub use kinet_manifests::ingress::*;

use crate::addons::{ensure, ensure_container, ensure_rbac};

/// Deploys the ingress add-on; existing objects are kept, and the Deployment's container is
/// patched back when its image or arguments differ.
pub async fn ensure_ingress(client: &kube::Client) -> Result<()> {
    ensure(&Api::<Namespace>::all(client.clone()), &namespace())
        .await
        .context("Namespace kinet-ingress")?;
    ensure(
        &Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE),
        &service_account(),
    )
    .await
    .context("ServiceAccount kinet-ingress/kinet-ingress")?;
    ensure_rbac(client, rbac()).await?;
    ensure(
        &Api::<Service>::namespaced(client.clone(), NAMESPACE),
        &service(),
    )
    .await
    .context("Service kinet-ingress/kinet-ingress")?;
    ensure(&Api::<IngressClass>::all(client.clone()), &ingress_class())
        .await
        .context("IngressClass kinet")?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let have = ensure(&deploys, &deployment())
        .await
        .context("Deployment kinet-ingress/kinet-ingress")?;
    ensure_container(&deploys, &have, container())
        .await
        .context("updating Deployment kinet-ingress/kinet-ingress")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deploys_once_and_restores_the_container() {
        let api = kinet_testkit::TestApi::start().await.unwrap();
        let client = api.client().unwrap();
        ensure_ingress(&client).await.unwrap();
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let rv = deploys.get(NAME).await.unwrap().metadata.resource_version;
        Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .get(NAME)
            .await
            .unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
            .get(NAME)
            .await
            .unwrap();
        Api::<IngressClass>::all(client.clone())
            .get(CLASS)
            .await
            .unwrap();
        // Unchanged: no write.
        ensure_ingress(&client).await.unwrap();
        assert_eq!(
            deploys.get(NAME).await.unwrap().metadata.resource_version,
            rv
        );
        // An edited container comes back.
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "controller", "image": "nginx"}]}}}});
        deploys
            .patch(
                NAME,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
        ensure_ingress(&client).await.unwrap();
        let d = deploys.get(NAME).await.unwrap();
        let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some(kinet_images::INGRESS_IMAGE));
    }
}
