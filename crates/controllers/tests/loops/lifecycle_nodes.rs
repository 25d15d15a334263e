//! The node lifecycle controller with the scheduler and ReplicaSet loops, against a real
//! in-process API server, with a 2 s grace period: a node whose agent goes silent turns
//! Unknown and tainted, its pods lose readiness and are evicted after their toleration,
//! the ReplicaSet replaces them on the live node, and the taints go when it comes back.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kinet_controllers::nodelifecycle::{self, health};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::support::{fake_kubelet, make_ready_node, spawn_loop, wait_for};

/// What an agent does: renew the Lease and post Ready=True with a fresh heartbeat.
async fn heartbeat(client: &Client, node: &str) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({"metadata": {"name": node}, "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now.to_string()}});
    if leases.get_opt(node).await?.is_none() {
        leases
            .create(&PostParams::default(), &serde_json::from_value(lease)?)
            .await?;
    } else {
        leases
            .patch(node, &PatchParams::default(), &Patch::Merge(lease))
            .await?;
    }
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status", "lastHeartbeatTime": now.to_string(), "lastTransitionTime": now.to_string()}]}});
    Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn ready_reason(node: &Node) -> Option<String> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")?
        .reason
        .clone()
}

fn taint_keys(node: &Node) -> Vec<(String, String)> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| (t.key.clone(), t.effect.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_silent_node_is_tainted_its_pods_evicted_and_replaced() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    for n in ["w1", "w2"] {
        make_ready_node(&client, n, json!({}), json!([])).await?;
        heartbeat(&client, n).await?;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}}}
    }))?;
    rss.create(&PostParams::default(), &rs).await?;
    let mut tasks = vec![
        tokio::spawn(fake_kubelet(client.clone())),
        spawn_loop(&client, kinet_controllers::scheduler::run),
        spawn_loop(&client, kinet_controllers::replicaset::run),
    ];
    let by_node = |n: &'static str| {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            anyhow::Ok(
                list.items
                    .into_iter()
                    .filter(|p| node_of(p) == n && p.metadata.deletion_timestamp.is_none())
                    .collect::<Vec<_>>(),
            )
        }
    };
    wait_for("ready replicas on both nodes", 20, || async {
        let (a, b) = (by_node("w1").await?, by_node("w2").await?);
        Ok(a.len() == 2 && b.len() == 2 && a.iter().chain(&b).all(pod_ready))
    })
    .await?;
    let on_w1: Vec<String> = by_node("w1").await?.iter().map(|p| p.name_any()).collect();

    // Only w2 keeps heartbeating from now on; w1's agent is gone.
    let beat = {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                let _ = heartbeat(&client, "w2").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let settings = nodelifecycle::Settings {
        node_monitor_grace_period: Duration::from_secs(2),
    };
    tasks.push(spawn_loop(&client, move |c| {
        nodelifecycle::run(c, settings)
    }));

    wait_for("w1 Unknown and unreachable-tainted", 20, || async {
        let n = nodes.get("w1").await?;
        Ok(health::ready_status(&n) == "Unknown"
            && ready_reason(&n).as_deref() == Some("NodeStatusUnknown")
            && taint_keys(&n)
                == [
                    (health::UNREACHABLE_TAINT.into(), "NoSchedule".into()),
                    (health::UNREACHABLE_TAINT.into(), "NoExecute".into()),
                ])
    })
    .await?;
    // Its pods lose readiness (the same pass marks them, after the taints); w2 and its pods
    // are untouched.
    wait_for("w1's pods not Ready (or evicted)", 20, || async {
        for name in &on_w1 {
            if pods.get_opt(name).await?.is_some_and(|p| pod_ready(&p)) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let w2 = nodes.get("w2").await?;
    assert_eq!(health::ready_status(&w2), "True");
    assert!(taint_keys(&w2).is_empty());

    wait_for("the replicas replaced on w2", 20, || async {
        let gone = futures::future::join_all(on_w1.iter().map(|n| pods.get_opt(n))).await;
        let evicted = gone
            .into_iter()
            .all(|p| p.is_ok_and(|p| p.is_none_or(|p| p.metadata.deletion_timestamp.is_some())));
        let w2 = by_node("w2").await?;
        Ok(evicted && w2.len() == 4 && w2.iter().all(pod_ready) && by_node("w1").await?.is_empty())
    })
    .await?;

    // The agent returns: Ready again, and the controller's taints go.
    heartbeat(&client, "w1").await?;
    wait_for("w1 Ready and untainted", 20, || async {
        let n = nodes.get("w1").await?;
        Ok(health::ready_status(&n) == "True" && taint_keys(&n).is_empty())
    })
    .await?;
    beat.abort();
    for t in tasks {
        t.abort();
    }
    Ok(())
}
