//! Pods bound to this node. The agent does not run containers yet (issue 4, part 2), so a
//! bound pod that is being deleted has nothing to stop: the agent confirms the deletion at
//! once, as the kubelet does after its containers exited. Without this, a graceful delete of
//! a scheduled pod would wait forever.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

/// Whether `pod` is bound to `node` and being deleted.
pub fn deletion_to_confirm(pod: &Pod, node: &str) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

/// Watches all pods and finishes the deletion of those bound here; runs until cancelled.
pub async fn confirm_deletions(client: Client, node: String) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        match events.try_next().await {
            Ok(Some(pod)) if deletion_to_confirm(&pod, &node) => {
                let ns = pod.namespace().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&pod.name_any(), &params).await {
                    Ok(_) => {
                        tracing::info!(pod = %format!("{ns}/{}", pod.name_any()), "pod deleted")
                    }
                    Err(e) => tracing::warn!(pod = %pod.name_any(), "confirming deletion: {e}"),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => tracing::warn!("pod watch: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn only_bound_pods_being_deleted() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        assert!(!deletion_to_confirm(&pod, "n1"));
        pod.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(deletion_to_confirm(&pod, "n1"));
        assert!(!deletion_to_confirm(&pod, "n2"));
    }
}
