//! The scheduler: binds pending pods to nodes through `pods/binding`.
//!
//! Two reflectors (nodes, pods) feed one serial pass that places every pending pod with the pure
//! [`place`] functions against an in-memory count of pods per node, then binds concurrently.
//! The counts and the queue of pending pods are kept from the pod events ([`pods`]), so a pass
//! does not walk every pod.
//! Pods bound but not yet seen bound in the pod store are remembered (`inflight`), so a pass that
//! runs before the watch catches up neither binds them twice nor forgets their node's count.
//! A pod that fits nowhere gets PodScheduled=False/Unschedulable and a FailedScheduling event;
//! every node or pod change starts a new pass, so it is retried when the cluster changes.

pub mod place;
pub mod pods;
pub mod resources;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, Notify};

use crate::events::{object_ref, EventType, Recorder};
use crate::owners::controller_uid;
use place::{place, NodeInfo};
use pods::PodIndex;
use resources::{pod_requests, Resources};

/// The `spec.schedulerName` this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// How many bind calls are in flight at once.
const CONCURRENCY: usize = 32;
/// A bind the watch has not confirmed within this long is retried.
const INFLIGHT_TTL: Duration = Duration::from_secs(30);
/// A pass also runs this often with no change, as a safety net.
const RESYNC: Duration = Duration::from_secs(5);

/// An event to publish, queued so binding never waits on event writes.
type EventMsg = (ObjectReference, EventType, &'static str, String);

/// Runs the scheduler.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let wake = Arc::new(Notify::new());
    let nodes = crate::runtime::reflect_and_wake(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &wake,
    );
    let index = Arc::new(Mutex::new(PodIndex::default()));
    let feed = index.clone();
    let pods = crate::runtime::reflect_feed_and_wake(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        &wake,
        move |ev| feed.lock().unwrap_or_else(|e| e.into_inner()).apply(ev),
    );
    nodes.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let events = spawn_event_writer(Recorder::new(client.clone(), SCHEDULER_NAME));
    let mut state = Scheduler {
        client,
        nodes,
        pods,
        index,
        events,
        inflight: HashMap::new(),
    };
    loop {
        state.pass().await;
        let _ = tokio::time::timeout(RESYNC, wake.notified()).await;
    }
}

fn spawn_event_writer(recorder: Recorder) -> mpsc::UnboundedSender<EventMsg> {
    let (tx, rx) = mpsc::unbounded_channel::<EventMsg>();
    let stream = tokio_stream_from(rx);
    tokio::spawn(
        stream.for_each_concurrent(8, move |(obj, type_, reason, msg)| {
            let recorder = recorder.clone();
            async move { recorder.publish(&obj, type_, reason, &msg).await }
        }),
    );
    tx
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct Scheduler {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    index: Arc<Mutex<PodIndex>>,
    events: mpsc::UnboundedSender<EventMsg>,
    /// Pod uid → (node, its requests, when bound), until the pod store shows the binding.
    inflight: HashMap<String, (String, Resources, Instant)>,
}

/// What one pass places against (see [`Scheduler::snapshot`]).
struct Snapshot {
    used: HashMap<String, Resources>,
    siblings: HashMap<String, HashMap<String, u64>>,
    pending: Vec<Arc<Pod>>,
}

/// Whether this scheduler should place the pod.
pub fn is_pending(pod: &Pod) -> bool {
    let spec = match &pod.spec {
        Some(s) => s,
        None => return false,
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && matches!(
            spec.scheduler_name.as_deref(),
            None | Some("") | Some(SCHEDULER_NAME)
        )
        && phase != "Succeeded"
        && phase != "Failed"
}

impl Scheduler {
    async fn pass(&mut self) {
        let mut nodes: Vec<NodeInfo> = self
            .nodes
            .state()
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .map(|n| NodeInfo::from_node(n))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let Snapshot {
            mut used,
            mut siblings,
            pending,
        } = self.snapshot();

        let mut binds = Vec::new();
        let mut failed = Vec::new();
        for pod in &pending {
            let spec = pod.spec.as_ref().expect("pending pods have a spec");
            let owner = controller_uid(&pod.metadata).map(str::to_string);
            let no_siblings = HashMap::new();
            let spread = owner
                .as_ref()
                .and_then(|o| siblings.get(o))
                .unwrap_or(&no_siblings);
            match place(spec, &nodes, &used, spread) {
                Ok(node) => {
                    if let Some(owner) = owner {
                        *siblings
                            .entry(owner)
                            .or_default()
                            .entry(node.clone())
                            .or_default() += 1;
                    }
                    let request = pod_requests(spec);
                    *used.entry(node.clone()).or_default() += request;
                    self.inflight.insert(
                        pod.metadata.uid.clone().unwrap_or_default(),
                        (node.clone(), request, Instant::now()),
                    );
                    binds.push((pod.clone(), node));
                }
                Err(msg) => failed.push((pod.clone(), msg)),
            }
        }

        let results: Vec<(String, bool)> = stream::iter(binds)
            .map(|(pod, node)| self.bind(pod, node))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (uid, ok) in results {
            if !ok {
                self.inflight.remove(&uid);
            }
        }
        stream::iter(failed)
            .for_each_concurrent(CONCURRENCY, |(pod, msg)| {
                self.report_unschedulable(pod, msg)
            })
            .await;
    }

    /// From the pod index: what each node's pods request and each controller's replicas per
    /// node, binds in flight included, and the pending pods not in flight, in queue order.
    fn snapshot(&mut self) -> Snapshot {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        // Forget binds the store has caught up with, or that went missing for too long.
        self.inflight
            .retain(|uid, (_, _, at)| index.is_pending(uid) && at.elapsed() < INFLIGHT_TTL);
        // What the pods on each node request, and the replicas of one controller per node,
        // bound or being bound: NodeResourcesFit's and the spreading's input.
        let mut used = index.used().clone();
        let mut siblings = index.siblings().clone();
        for (uid, (node, request, _)) in &self.inflight {
            *used.entry(node.clone()).or_default() += *request;
            if let Some(owner) = index.owner(uid) {
                *(siblings.entry(owner.to_string()).or_default())
                    .entry(node.clone())
                    .or_default() += 1;
            }
        }
        // Oldest first, then by name: a stable FIFO.
        let pending: Vec<Arc<Pod>> = index
            .pending()
            .filter(|(_, _, uid)| !self.inflight.contains_key(*uid))
            .filter_map(|(ns, name, _)| self.pods.get(&ObjectRef::new(name).within(ns)))
            .filter(|p| is_pending(p))
            .collect();
        Snapshot {
            used,
            siblings,
            pending,
        }
    }

    /// Binds one pod; returns its uid and whether the bind stands (a 409 means it is bound).
    async fn bind(&self, pod: Arc<Pod>, node: String) -> (String, bool) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => {
                let msg = format!("Successfully assigned {ns}/{name} to {node}");
                let _ = self.events.send((
                    object_ref(pod.as_ref()),
                    EventType::Normal,
                    "Scheduled",
                    msg,
                ));
                (uid, true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => (uid, true),
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), %node, error = %e, "bind failed");
                (uid, false)
            }
        }
    }

    /// Sets PodScheduled=False/Unschedulable (unless already so) and records FailedScheduling.
    async fn report_unschedulable(&self, pod: Arc<Pod>, msg: String) {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(msg.as_str())
        }) {
            return;
        }
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
            "lastProbeTime": null, "lastTransitionTime": now,
        }]}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "could not set PodScheduled=False");
        }
        let _ = self.events.send((
            object_ref(pod.as_ref()),
            EventType::Warning,
            "FailedScheduling",
            msg,
        ));
    }
}
