//! The garbage collector against a real API server: background, foreground and orphan deletion.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::support::eventually;

async fn make(
    cms: &Api<ConfigMap>,
    name: &str,
    owner: Option<&ConfigMap>,
) -> anyhow::Result<ConfigMap> {
    let owners: Vec<_> = owner
        .iter()
        .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid, "blockOwnerDeletion": true}))
        .collect();
    let cm =
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}}))?;
    Ok(cms.create(&PostParams::default(), &cm).await?)
}

#[tokio::test]
async fn background_foreground_and_orphan() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let task = tokio::spawn(kinet_controllers::gc::run(client.clone()));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Background: the dependent of a deleted owner goes, a chain goes link by link.
    let owner = make(&cms, "bg-owner", None).await?;
    let child = make(&cms, "bg-child", Some(&owner)).await?;
    make(&cms, "bg-grandchild", Some(&child)).await?;
    let keeper = make(&cms, "keeper", None).await?;
    make(&cms, "kept", Some(&keeper)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cms.get_opt("bg-child").await?.is_some(),
        "a dependent with a live owner stays"
    );
    cms.delete("bg-owner", &DeleteParams::default()).await?;
    eventually("background chain collected", || async {
        Ok((cms.get_opt("bg-child").await?.is_none()
            && cms.get_opt("bg-grandchild").await?.is_none())
        .then_some(()))
    })
    .await?;
    assert!(cms.get_opt("kept").await?.is_some());

    // Foreground: the owner stays until its dependents are gone, then goes too.
    let owner = make(&cms, "fg-owner", None).await?;
    let child = make(&cms, "fg-child", Some(&owner)).await?;
    make(&cms, "fg-grandchild", Some(&child)).await?;
    cms.delete("fg-owner", &DeleteParams::foreground()).await?;
    eventually("foreground owner and dependents gone", || async {
        let left = [
            cms.get_opt("fg-owner").await?,
            cms.get_opt("fg-child").await?,
            cms.get_opt("fg-grandchild").await?,
        ];
        Ok(left.iter().all(Option::is_none).then_some(()))
    })
    .await?;

    // Orphan: the owner goes, the dependent stays without its ownerReference.
    let owner = make(&cms, "or-owner", None).await?;
    make(&cms, "or-child", Some(&owner)).await?;
    cms.delete("or-owner", &DeleteParams::orphan()).await?;
    eventually("orphan owner gone", || async {
        Ok(cms.get_opt("or-owner").await?.is_none().then_some(()))
    })
    .await?;
    let child = cms.get("or-child").await?;
    assert!(child
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cms.get_opt("or-child").await?.is_some(),
        "an orphaned dependent is not collected"
    );
    task.abort();
    Ok(())
}
