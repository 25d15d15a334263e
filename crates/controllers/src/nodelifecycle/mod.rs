//! The node lifecycle controller: kube-controller-manager's `nodelifecycle` plus its
//! taint-eviction controller. It watches Nodes, their Leases in `kube-node-lease` and Pods;
//! a node silent for the grace period gets Unknown conditions, the controller's taints
//! follow every node's Ready status, pods on a silent node lose readiness (so
//! EndpointSlices drop them), and pods whose NoExecute tolerations ran out are deleted, for
//! their ReplicaSet to replace elsewhere. The decisions are in [`health`].

pub mod health;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::events::{object_ref, EventType, Recorder};
use health::Eviction;

/// Where node Leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The longest sleep between passes when no deadline is near (upstream's monitor period).
const MONITOR_PERIOD: Duration = Duration::from_secs(5);

/// The controller's settings (kube-controller-manager's flags of the same names).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `--node-monitor-grace-period`: silence after which a node is Unknown (40 s).
    pub node_monitor_grace_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_monitor_grace_period: Duration::from_secs(40),
        }
    }
}

/// Runs the controller until its watches end.
pub async fn run(client: Client, settings: Settings) -> Result<(), crate::LoopError> {
    let wake = Arc::new(Notify::new());
    use crate::runtime::reflect_and_wake as reflect;
    let nodes = reflect(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &wake,
    );
    let leases = reflect(
        Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
        watcher::Config::default(),
        &wake,
    );
    let pods = reflect(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        &wake,
    );
    nodes.wait_until_ready().await?;
    leases.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let pass = Pass {
        client: client.clone(),
        recorder: Recorder::new(client, "node-controller"),
        monitor: health::Monitor {
            grace: settings.node_monitor_grace_period,
            since: Timestamp::now(),
        },
    };
    loop {
        let next = pass.run(&nodes, &leases, &pods).await;
        let sleep = next
            .and_then(|t| Duration::try_from(t.duration_since(Timestamp::now())).ok())
            .map_or(MONITOR_PERIOD, |d| d.min(MONITOR_PERIOD));
        // A deadline just passed still gets a pass after a short pause, not a busy loop.
        let sleep = sleep.max(Duration::from_millis(100));
        let _ = tokio::time::timeout(sleep, wake.notified()).await;
    }
}

struct Pass {
    client: Client,
    recorder: Recorder,
    monitor: health::Monitor,
}

impl Pass {
    /// One level-triggered pass over every node; returns when the next deadline falls (a
    /// node going stale, a pod's eviction).
    async fn run(
        &self,
        nodes: &Store<Node>,
        leases: &Store<Lease>,
        pods: &Store<Pod>,
    ) -> Option<Timestamp> {
        let now = Timestamp::now();
        let leases: HashMap<String, Arc<Lease>> = leases
            .state()
            .into_iter()
            .map(|l| (l.name_any(), l))
            .collect();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in pods.state() {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let mut next: Option<Timestamp> = None;
        let mut due = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
        for node in nodes.state() {
            let name = node.name_any();
            let lease = leases.get(&name).map(|l| l.as_ref());
            let node = self.monitor_health(&node, lease, now).await;
            if health::ready_status(&node) != "Unknown" {
                if let Some(h) = health::last_heartbeat(&node, lease) {
                    due(self.monitor.stale_at(h));
                }
            }
            let taints = self.update_taints(&node, now).await;
            let pods = by_node.remove(&name).unwrap_or_default();
            // Only a silent node's pods: a live agent that reports its node NotReady still
            // reports its pods itself, and both writing them would take turns forever.
            if health::ready_status(&node) == "Unknown" {
                self.mark_pods_not_ready(&name, &pods, now).await;
            }
            for pod in pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                match health::eviction(pod, &taints, self.monitor.since, now) {
                    Eviction::At(t) if t <= now => self.evict(pod).await,
                    Eviction::At(t) => due(t),
                    Eviction::Never => {}
                }
            }
        }
        next
    }

    /// Marks a silent node's conditions Unknown; returns the node as it now stands.
    async fn monitor_health(&self, node: &Node, lease: Option<&Lease>, now: Timestamp) -> Node {
        let Some(conditions) = health::stale_conditions(node, lease, now, &self.monitor) else {
            return node.clone();
        };
        let name = node.name_any();
        let was = health::ready_status(node).to_string();
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": conditions}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => {
                tracing::info!(node = %name, "node stopped posting status; marked Unknown");
                if was == "True" {
                    self.recorder
                        .publish(
                            &object_ref(&updated),
                            EventType::Normal,
                            "NodeNotReady",
                            &format!("Node {name} status is now: NodeNotReady"),
                        )
                        .await;
                }
                updated
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "could not mark node Unknown");
                node.clone()
            }
        }
    }

    /// Puts the taints for the node's Ready status in place; returns them.
    async fn update_taints(
        &self,
        node: &Node,
        now: Timestamp,
    ) -> Vec<k8s_openapi::api::core::v1::Taint> {
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted = health::desired_taints(&current, health::ready_status(node), now);
        if wanted == current {
            return current;
        }
        let name = node.name_any();
        // The resourceVersion makes the write conditional: a taint someone added meanwhile
        // is not lost; the next pass recomputes from the newer node.
        // No taints left: the field goes, as kube-apiserver stores an empty list (omitempty).
        let taints = match wanted.is_empty() {
            true => serde_json::Value::Null,
            false => json!(wanted),
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => wanted,
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "could not update node taints");
                current
            }
        }
    }

    /// MarkPodsNotReady: the Ready condition of each pod on the node turns False.
    async fn mark_pods_not_ready(&self, node: &str, pods: &[Arc<Pod>], now: Timestamp) {
        for pod in pods {
            let Some(cond) = health::not_ready_condition(pod, now) else {
                continue;
            };
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let patch = json!({"status": {"conditions": [cond]}});
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Ok(_) => {
                    self.recorder
                        .publish(
                            &object_ref(pod.as_ref()),
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready",
                        )
                        .await
                }
                Err(e) => {
                    tracing::warn!(node, pod = %pod.name_any(), error = %e, "could not mark pod not ready")
                }
            }
        }
    }

    /// Deletes the pod as the taint-eviction controller does (graceful, so its kubelet,
    /// when it returns, stops the containers).
    async fn evict(&self, pod: &Pod) {
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let precondition = DeleteParams {
            preconditions: pod.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &precondition).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), "evicted from a tainted node");
                self.recorder
                    .publish(
                        &object_ref(pod),
                        EventType::Normal,
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {ns}/{name}"),
                    )
                    .await;
            }
            Err(e) => tracing::warn!(pod = %name, error = %e, "could not evict pod"),
        }
    }
}
