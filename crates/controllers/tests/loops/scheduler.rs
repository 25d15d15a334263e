//! The scheduler against a real in-process API server.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{make_ready_node, wait_for};

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn binds_spreads_and_reports_unschedulable() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    make_ready_node(
        &client,
        "cp",
        json!({"node-role.kubernetes.io/control-plane": ""}),
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    )
    .await?;
    make_ready_node(&client, "w1", json!({"zone": "a"}), json!([])).await?;
    make_ready_node(&client, "w2", json!({"zone": "b"}), json!([])).await?;
    let sched = tokio::spawn(kinet_controllers::scheduler::run(client.clone()));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..20 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}"), json!({})))
            .await?;
    }
    pods.create(
        &PostParams::default(),
        &pod("pinned", json!({"nodeSelector": {"zone": "c"}})),
    )
    .await?;
    wait_for("20 pods bound", 20, || async {
        let list = pods.list(&Default::default()).await?;
        Ok(list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
            .count()
            == 20)
    })
    .await?;
    let list = pods.list(&Default::default()).await?;
    let on = |n: &str| {
        list.items
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(n))
            .count()
    };
    assert_eq!(
        (on("cp"), on("w1"), on("w2")),
        (0, 10, 10),
        "spread evenly over the untainted workers"
    );

    wait_for("PodScheduled=False", 20, || async {
        let p = pods.get("pinned").await?;
        let cond = p.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "PodScheduled");
        Ok(cond.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref()
                    == Some("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
        }))
    })
    .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    wait_for("FailedScheduling and Scheduled events", 20, || async {
        let evs = events.list(&Default::default()).await?.items;
        let failed = evs.iter().any(|e| {
            e.reason.as_deref() == Some("FailedScheduling")
                && e.involved_object.name.as_deref() == Some("pinned")
        });
        let ok = evs.iter().any(|e| {
            e.reason.as_deref() == Some("Scheduled")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Successfully assigned default/p"))
        });
        Ok(failed && ok)
    })
    .await?;

    // A matching node appears: the pod is retried and bound there.
    make_ready_node(&client, "w3", json!({"zone": "c"}), json!([])).await?;
    wait_for("pinned bound to w3", 20, || async {
        Ok(pods.get("pinned").await?.spec.unwrap().node_name.as_deref() == Some("w3"))
    })
    .await?;
    let p = pods.get("pinned").await?;
    let cond = p
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled");
    assert_eq!(cond.map(|c| c.status), Some("True".into()));
    sched.abort();
    Ok(())
}

#[tokio::test]
async fn restart_does_not_rebind_and_binds_a_thousand_quickly() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    for n in ["a", "b", "c", "d"] {
        make_ready_node(&client, n, json!({}), json!([])).await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Pods created before the scheduler starts, concurrently.
    futures::future::try_join_all((0..1000).map(|i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("p{i}"), json!({})))
                .await
        }
    }))
    .await?;
    let start = Instant::now();
    let sched = tokio::spawn(kinet_controllers::scheduler::run(client.clone()));
    wait_for("1000 pods bound", 60, || async {
        let list = pods.list(&Default::default()).await?;
        Ok(list
            .items
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.is_some()))
    })
    .await?;
    let took = start.elapsed();
    eprintln!("1000 pods bound in {took:?}");
    sched.abort();
    let list = pods.list(&Default::default()).await?;
    for n in ["a", "b", "c", "d"] {
        let count = list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(n))
            .count();
        assert_eq!(count, 250, "node {n}");
    }
    // A second scheduler over the same state changes nothing.
    let before: Vec<(String, Option<String>)> = list
        .items
        .iter()
        .map(|p| (p.name_any(), p.resource_version()))
        .collect();
    let sched = tokio::spawn(kinet_controllers::scheduler::run(client.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    sched.abort();
    let after: Vec<(String, Option<String>)> = pods
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|p| (p.name_any(), p.resource_version()))
        .collect();
    assert_eq!(before, after);
    Ok(())
}
