//! The namespace loop against a real API server: deleting a namespace empties it, pods whose
//! node agent never answers are forced after their grace period, and the namespace goes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

#[tokio::test]
async fn deleting_a_namespace_empties_and_removes_it() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let task = tokio::spawn(kinet_controllers::namespace::run(client.clone()));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "doomed");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}}))?,
    )
    .await?;
    svcs.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )?,
    )
    .await?;
    // Bound to a node whose agent never comes: it must be forced after its 1 s grace period.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "stuck"}, "spec": {"nodeName": "gone-node", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "x"}]}}))?,
    )
    .await?;
    // Another namespace is left alone.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    other
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "survivor"}}))?,
        )
        .await?;

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut saw_pod_terminating = false;
    while namespaces.get_opt("doomed").await?.is_some() {
        if pods
            .get_opt("stuck")
            .await?
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        {
            saw_pod_terminating = true;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "namespace still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_pod_terminating, "the pod got its grace period first");
    assert!(cms.get_opt("cfg").await?.is_none());
    assert!(other.get_opt("survivor").await?.is_some());
    // Creating it again works: no leftovers.
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?,
        )
        .await?;
    assert!(cms.list(&Default::default()).await?.items.is_empty());
    task.abort();
    Ok(())
}
