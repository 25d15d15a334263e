//! `POST pods/<name>/eviction` over HTTPS: a budget with a disruption to spare gives it up
//! (recording the pod) and the pod goes; a spent budget refuses with kube-apiserver's 429.

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kinet_testkit::TestApi;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

async fn evict(client: &kube::Client, pod: &str, dry_run: bool) -> (u16, Value) {
    let query = if dry_run { "?dryRun=All" } else { "" };
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "default"}, "deleteOptions": {"gracePeriodSeconds": 0}});
    let req = http::Request::post(format!(
        "/api/v1/namespaces/default/pods/{pod}/eviction{query}"
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&body).unwrap())
    .unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// A Running, Ready pod labelled `app=web`.
async fn running_pod(pods: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))?;
    pods.create(&PostParams::default(), &pod).await?;
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_budget_gives_up_one_disruption_then_refuses() -> anyhow::Result<()> {
    let api = TestApi::start().await?;
    // The 429 is checked as it comes, not waited out (retryAfterSeconds) and resent.
    let client = api.client_without_retry()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    for name in ["web-0", "web-1", "web-2"] {
        running_pod(&pods, name).await?;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))?;
    budgets.create(&PostParams::default(), &pdb).await?;
    // What the disruption loop would write: three healthy, two needed.
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": 1,
        "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}});
    budgets
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await?;

    let (code, _) = evict(&client, "web-0", true).await;
    assert_eq!(code, 201, "a dry run is allowed");
    assert!(
        pods.get_opt("web-0").await?.is_some(),
        "a dry run deletes nothing"
    );
    let budget = budgets.get_status("web").await?.status.unwrap();
    assert_eq!(budget.disruptions_allowed, 1, "a dry run takes nothing");

    let (code, body) = evict(&client, "web-0", false).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (201, Some("Success")),
        "{body}"
    );
    assert!(pods.get_opt("web-0").await?.is_none());
    let budget = budgets.get_status("web").await?.status.unwrap();
    assert_eq!(budget.disruptions_allowed, 0);
    assert!(budget.disrupted_pods.unwrap().contains_key("web-0"));

    let (code, body) = evict(&client, "web-1", false).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(
        body["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        body["details"]["causes"],
        json!([{"reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 3 currently"}])
    );
    assert!(pods.get_opt("web-1").await?.is_some());

    let (code, body) = evict(&client, "nobody", false).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("pods \"nobody\" not found"))
    );
    Ok(())
}
