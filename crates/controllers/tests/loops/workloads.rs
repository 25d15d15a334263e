//! ReplicaSet and Deployment loops (with the scheduler) against a real in-process API server.
//! No kubelet runs, so a small fake marks bound pods Running/Ready and finishes deletions.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::support::{fake_kubelet, make_ready_node, spawn_loop, wait_for};

fn spawn_all(client: &Client) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        spawn_loop(client, kinet_controllers::scheduler::run),
        spawn_loop(client, kinet_controllers::replicaset::run),
        spawn_loop(client, kinet_controllers::deployment::run),
    ]
}

async fn active_pods(pods: &Api<Pod>, sel: &str) -> anyhow::Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(sel))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

#[tokio::test]
async fn replicaset_creates_adopts_scales_and_survives_restart() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    make_ready_node(&client, "n1", json!({}), json!([])).await?;
    let kubelet = tokio::spawn(fake_kubelet(client.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // An orphan that matches the selector: adopted, not duplicated.
    pods.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "orphan", "labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}))?).await?;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "rs"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "rs"}}, "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))?;
    rss.create(&PostParams::default(), &rs).await?;
    let tasks = spawn_all(&client);
    wait_for("3 ready replicas", 20, || async {
        let s = rss.get("rs").await?.status.unwrap_or_default();
        Ok(s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == Some(1))
    })
    .await?;
    let list = active_pods(&pods, "app=rs").await?;
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().any(|p| p.name_any() == "orphan"),
        "orphan adopted"
    );
    for p in &list {
        let r = &p.owner_references()[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.name.as_str(),
                r.controller,
                r.block_owner_deletion
            ),
            ("ReplicaSet", "rs", Some(true), Some(true))
        );
        if p.name_any() != "orphan" {
            assert!(p.name_any().starts_with("rs-"));
        }
    }

    // Restart every loop: nothing is duplicated.
    tasks.iter().for_each(|t| t.abort());
    let tasks = spawn_all(&client);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(active_pods(&pods, "app=rs").await?.len(), 3);

    rss.patch(
        "rs",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    wait_for("scaled to 1", 20, || async {
        Ok(active_pods(&pods, "app=rs").await?.len() == 1
            && rss.get("rs").await?.status.unwrap_or_default().replicas == 1)
    })
    .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate")
            && reasons.iter().any(|r| r == "SuccessfulDelete"),
        "{reasons:?}"
    );
    tasks.iter().for_each(|t| t.abort());
    kubelet.abort();
    Ok(())
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    }))
    .unwrap()
}

/// What `kubectl rollout status` checks.
fn rollout_done(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.conditions.unwrap_or_default().iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        })
}

#[tokio::test]
async fn deployment_rolls_out_rolls_back_and_keeps_history() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    make_ready_node(&client, "n1", json!({}), json!([])).await?;
    make_ready_node(&client, "n2", json!({}), json!([])).await?;
    let kubelet = tokio::spawn(fake_kubelet(client.clone()));
    let tasks = spawn_all(&client);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deps.create(&PostParams::default(), &deployment("nginx:1"))
        .await?;
    wait_for("first rollout", 30, || async {
        Ok(rollout_done(&deps.get("web").await?))
    })
    .await?;
    let list = rss.list(&Default::default()).await?.items;
    assert_eq!(list.len(), 1);
    let first = list[0].clone();
    let hash = first.labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(
        first
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        first
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()
            .get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(
        active_pods(&pods, &format!("pod-template-hash={hash}"))
            .await?
            .len(),
        4
    );

    // Roll to a new image: never more than 5 pods (maxSurge 1), never fewer than 4 available.
    deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}))).await?;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let n = active_pods(&pods, "app=web").await?.len();
        assert!(n <= 5, "surge exceeded: {n} pods");
        let d = deps.get("web").await?;
        if d.metadata.generation == d.status.as_ref().and_then(|s| s.observed_generation)
            && rollout_done(&d)
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "second rollout timed out: {:?}",
            d.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("old pods gone", 20, || async {
        Ok(active_pods(&pods, &format!("pod-template-hash={hash}"))
            .await?
            .is_empty())
    })
    .await?;
    let second = rss
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|rs| rs.name_any() != first.name_any())
        .unwrap();
    assert_eq!(
        second
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        deps.get("web")
            .await?
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );

    // `kubectl rollout undo`: the template goes back; the first ReplicaSet is reused as revision 3.
    deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}))).await?;
    wait_for("undo", 40, || async {
        let d = deps.get("web").await?;
        Ok(
            d.metadata.generation == d.status.as_ref().and_then(|s| s.observed_generation)
                && rollout_done(&d)
                && rss.get(&first.name_any()).await?.spec.unwrap().replicas == Some(4),
        )
    })
    .await?;
    let reused = rss.get(&first.name_any()).await?;
    assert_eq!(
        reused
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        reused
            .annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        rss.list(&Default::default()).await?.items.len(),
        2,
        "no third ReplicaSet"
    );

    // Scale with no rollout in progress: the new ReplicaSet follows.
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2, "revisionHistoryLimit": 0}})),
    )
    .await?;
    wait_for("scaled down and history cleaned", 30, || async {
        let d = deps.get("web").await?;
        Ok(rollout_done(&d)
            && rss.list(&Default::default()).await?.items.len() == 1
            && active_pods(&pods, "app=web").await?.len() == 2)
    })
    .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    assert!(events
        .list(&Default::default())
        .await?
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet")));
    tasks.iter().for_each(|t| t.abort());
    kubelet.abort();
    Ok(())
}
