//! Helpers the integration tests share: polling until a condition holds, registering nodes,
//! and a fake kubelet.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

/// Calls `f` every `every` until it yields a value, failing after `timeout`.
pub async fn poll<F, Fut, T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The value `f` yields within ten seconds, polled every 20ms.
pub async fn eventually<F, Fut, T>(what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    poll(what, Duration::from_secs(10), Duration::from_millis(20), f).await
}

/// Waits up to `secs` seconds for `f` to hold, polled every 50ms.
pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let every = Duration::from_millis(50);
    poll(what, Duration::from_secs(secs), every, || {
        let fut = f();
        async move { Ok(fut.await?.then_some(())) }
    })
    .await
}

/// Creates a node with these labels and taints, without status (no kubelet reports on it).
pub async fn create_node(
    client: &Client,
    name: &str,
    labels: Value,
    taints: Value,
) -> anyhow::Result<()> {
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}),
    )?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    Ok(())
}

/// Creates a node and reports it Ready, as its kubelet would on registering.
pub async fn make_ready_node(
    client: &Client,
    name: &str,
    labels: Value,
    taints: Value,
) -> anyhow::Result<()> {
    create_node(client, name, labels, taints).await?;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}]}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

/// Runs a control loop on its own task until the test aborts it; how it ends does not matter.
pub fn spawn_loop<F, Fut>(client: &Client, run: F) -> tokio::task::JoinHandle<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<(), kinet_controllers::LoopError>> + Send + 'static,
{
    let running = run(client.clone());
    tokio::spawn(async move {
        let _ = running.await;
    })
}

/// Marks bound pods Running and Ready, and removes pods being deleted, as a kubelet would.
/// Runs until aborted.
pub async fn fake_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list.items {
                let api: Api<Pod> =
                    Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                        .await;
                    continue;
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if bound && !running {
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let st = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = api
                        .patch_status(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(st),
                        )
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
