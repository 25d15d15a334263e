//! The DaemonSet loop (with the scheduler) against a real in-process API server, with a fake
//! kubelet that marks bound pods Ready and finishes deletions.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::support::{fake_kubelet, make_ready_node, spawn_loop, wait_for};

async fn placement(pods: &Api<Pod>) -> anyhow::Result<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = pods
        .list(&ListParams::default().labels("app=agent"))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.spec.and_then(|s| s.node_name).unwrap_or_default(),
                p.metadata
                    .labels
                    .unwrap_or_default()
                    .get("controller-revision-hash")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    Ok(v)
}

#[tokio::test]
async fn one_pod_per_eligible_node_and_rolling_update() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    make_ready_node(
        &client,
        "cp",
        json!({}),
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    )
    .await?;
    make_ready_node(&client, "w1", json!({}), json!([])).await?;
    make_ready_node(&client, "w2", json!({}), json!([])).await?;
    let tasks = [
        tokio::spawn(fake_kubelet(client.clone())),
        spawn_loop(&client, kinet_controllers::scheduler::run),
        spawn_loop(&client, kinet_controllers::daemonset::run),
    ];
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}
    }))?;
    dss.create(&PostParams::default(), &ds).await?;
    let status_is = |want: (i32, i32, i32, i32, i32)| {
        let dss = dss.clone();
        move || {
            let dss = dss.clone();
            async move {
                let d = dss.get("agent").await?;
                let s = d.status.unwrap_or_default();
                let got = (
                    s.desired_number_scheduled,
                    s.current_number_scheduled,
                    s.number_ready,
                    s.number_available.unwrap_or(0),
                    s.updated_number_scheduled.unwrap_or(0),
                );
                Ok(got == want
                    && s.number_misscheduled == 0
                    && s.observed_generation == d.metadata.generation)
            }
        }
    };
    wait_for("2 daemons ready", 20, status_is((2, 2, 2, 2, 2))).await?;
    let nodes: Vec<String> = placement(&pods)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(nodes, vec!["w1", "w2"], "not on the tainted control plane");

    make_ready_node(&client, "w3", json!({}), json!([])).await?;
    wait_for("3 daemons ready", 20, status_is((3, 3, 3, 3, 3))).await?;
    let before = placement(&pods).await?;
    assert_eq!(
        before.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["w1", "w2", "w3"]
    );

    dss.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}))).await?;
    wait_for("rolled to the new template", 30, || async {
        let now = placement(&pods).await?;
        Ok(now.len() == 3
            && now.iter().all(|(_, h)| *h != before[0].1)
            && status_is((3, 3, 3, 3, 3))().await?)
    })
    .await?;
    let after = placement(&pods).await?;
    assert_eq!(
        after.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["w1", "w2", "w3"]
    );
    tasks.iter().for_each(|t| t.abort());
    Ok(())
}
