//! Deleting a CustomResourceDefinition as kube-apiserver does: the cleanup finalizer keeps it,
//! Terminating, while its objects are deleted (their own finalizers honoured) and refuses new
//! ones; it goes once the last object is gone.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kinet_testkit::TestApi;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

const NAME: &str = "widgets.example.com";

/// Polls `f` until it gives a value, for at most a minute.
async fn poll<T, F: std::future::Future<Output = Option<T>>>(what: &str, f: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminating(crd: &CustomResourceDefinition) -> Option<(String, String)> {
    let c = crd
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Terminating")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_definition_terminates_until_its_objects_are_gone() {
    let server = TestApi::start().await.unwrap();
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let widget = |name: &str, finalizers: &[&str]| {
        let mut w = DynamicObject::new(name, &ar);
        w.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        w
    };
    let pp = PostParams::default();
    widgets.create(&pp, &widget("free", &[])).await.unwrap();
    widgets
        .create(&pp, &widget("held", &["example.com/hold"]))
        .await
        .unwrap();

    let marked = crds
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the definition stays while its objects go");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.finalizers,
        Some(vec![
            "customresourcecleanup.apiextensions.k8s.io".to_string()
        ])
    );
    assert_eq!(
        terminating(&marked),
        Some(("True".into(), "InstanceDeletionPending".into()))
    );

    // The free object goes; the held one is marked, and keeps the definition Terminating.
    poll("the free widget to go", || async {
        widgets
            .get_opt("free")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // The cleanup deletes the objects one by one, in no set order: wait for the held one too.
    poll("the held widget to be marked", || async {
        let held = widgets.get("held").await.unwrap();
        held.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    let still = poll("the cleanup to see the held widget", || async {
        let crd = crds.get(NAME).await.unwrap();
        (terminating(&crd)?.1 == "InstanceDeletionCheck").then_some(crd)
    })
    .await;
    assert_eq!(terminating(&still).unwrap().0, "True");
    let refused = widgets.create(&pp, &widget("late", &[])).await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 405
            && s.message == "create not allowed while custom resource definition is terminating"),
        "{refused:?}"
    );

    // Releasing the last object lets the finalizer finish, and the definition goes.
    let release = json!({"metadata": {"finalizers": null}});
    widgets
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    poll("the definition to go", || async {
        crds.get_opt(NAME).await.unwrap().is_none().then_some(())
    })
    .await;
    let gone = widgets.list(&Default::default()).await.unwrap_err();
    assert!(
        matches!(gone, kube::Error::Api(s) if s.code == 404),
        "no longer served"
    );
}
