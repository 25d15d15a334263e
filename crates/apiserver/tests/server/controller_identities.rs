//! The control loops' own identities against the real server: each may do its job, and is
//! refused with kube-apiserver's 403 for what its bootstrap role lacks.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kinet_testkit::TestApi;
use kube::api::{ListParams, PostParams};
use kube::Api;
use serde_json::json;

#[tokio::test]
async fn a_loop_is_refused_what_its_role_lacks() -> anyhow::Result<()> {
    let api = TestApi::start().await?;
    let clients = api.controller_clients()?;
    let deployments = clients.controller("deployment-controller");

    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web-1"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))?;
    Api::<ReplicaSet>::namespaced(deployments.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await?;

    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))?;
    let refused = Api::<Pod>::namespaced(deployments.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .expect_err("the deployment controller makes ReplicaSets, not pods");
    let kube::Error::Api(status) = &refused else {
        panic!("{refused}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:kube-system:deployment-controller\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let secrets = Api::<Secret>::namespaced(deployments, "default")
        .list(&ListParams::default())
        .await;
    assert!(matches!(secrets, Err(kube::Error::Api(s)) if s.code == 403));

    // The replica set controller, on the other hand, makes pods.
    Api::<Pod>::namespaced(clients.controller("replicaset-controller"), "default")
        .create(&PostParams::default(), &pod)
        .await?;
    Ok(())
}
