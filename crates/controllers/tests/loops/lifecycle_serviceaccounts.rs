//! The serviceaccounts loop against a real API server.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use crate::support::eventually;

#[tokio::test]
async fn every_namespace_gets_a_default_account_again_and_again() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let task = tokio::spawn(kinet_controllers::serviceaccounts::run(client.clone()));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}}))?,
        )
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let first = eventually("default account", || async {
        Ok(sas.get_opt("default").await?)
    })
    .await?;
    // The system namespaces get one too.
    let kube_system: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    eventually("kube-system default", || async {
        Ok(kube_system.get_opt("default").await?)
    })
    .await?;

    sas.delete("default", &DeleteParams::default()).await?;
    let second = eventually("recreated account", || async {
        Ok(sas
            .get_opt("default")
            .await?
            .filter(|sa| sa.metadata.uid != first.metadata.uid))
    })
    .await?;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    // No duplicates: exactly one account in the namespace.
    assert_eq!(sas.list(&Default::default()).await?.items.len(), 1);
    task.abort();
    Ok(())
}
