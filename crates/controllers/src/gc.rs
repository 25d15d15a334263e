//! The garbage collector: ownerReferences, as kube-controller-manager's.
//!
//! Every kind that can own or be owned is watched into a reflector store; any event marks the
//! graph dirty and a worker recomputes, from the whole uid graph, what to do ([`plan`], pure):
//! delete dependents whose owners are all gone (background), delete the dependents of an owner
//! waiting in `foregroundDeletion` and drop that finalizer when none block it any more, and
//! strip the ownerReference of an owner with the `orphan` finalizer before dropping that
//! finalizer. Before deleting for a vanished owner, the owner is looked up live: the stores of
//! different kinds can lag each other by a few milliseconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::{apps, batch, coordination, core, discovery, networking};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

pub const FOREGROUND: &str = "foregroundDeletion";
/// How many objects are acted on at once.
const CONCURRENCY: usize = 32;
/// A delete the stores have not shown within this long is issued again.
const ISSUED_TTL: Duration = Duration::from_secs(10);

/// Owner uid → whether it was found alive, for one pass.
type OwnerCache = std::sync::Mutex<HashMap<String, bool>>;
pub const ORPHAN: &str = "orphan";

/// The kinds in the graph: (resource, namespaced).
fn kinds() -> Vec<(ApiResource, bool)> {
    fn k<K: kube::Resource<DynamicType = ()>>(namespaced: bool) -> (ApiResource, bool) {
        (ApiResource::erase::<K>(&()), namespaced)
    }
    vec![
        k::<apps::v1::Deployment>(true),
        k::<apps::v1::ReplicaSet>(true),
        k::<apps::v1::DaemonSet>(true),
        k::<apps::v1::StatefulSet>(true),
        k::<apps::v1::ControllerRevision>(true),
        k::<batch::v1::CronJob>(true),
        k::<batch::v1::Job>(true),
        k::<core::v1::Pod>(true),
        k::<core::v1::Service>(true),
        k::<core::v1::Endpoints>(true),
        k::<core::v1::ConfigMap>(true),
        k::<core::v1::Secret>(true),
        k::<core::v1::ServiceAccount>(true),
        k::<discovery::v1::EndpointSlice>(true),
        k::<coordination::v1::Lease>(true),
        k::<networking::v1::Ingress>(true),
        k::<networking::v1::NetworkPolicy>(true),
        k::<networking::v1::IngressClass>(false),
        k::<core::v1::Node>(false),
    ]
}

/// One object of the graph, as much as the collector needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index into [`kinds`].
    pub kind: usize,
    pub uid: String,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Node {
    fn waits_for_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }
}

/// What to do to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete it, foreground when it has dependents of its own that must go first. `verify`:
    /// its owners looked vanished, so check that live before deleting.
    Delete {
        node: Node,
        foreground: bool,
        verify: bool,
    },
    /// Drop the ownerReferences naming these uids.
    RemoveOwners { node: Node, uids: Vec<String> },
    /// Drop a finalizer (the collector's own).
    RemoveFinalizer { node: Node, finalizer: &'static str },
}

impl Action {
    /// The object acted on.
    pub fn node(&self) -> &Node {
        match self {
            Action::Delete { node, .. }
            | Action::RemoveOwners { node, .. }
            | Action::RemoveFinalizer { node, .. } => node,
        }
    }
}

/// Everything the collector should do, given every object it knows.
pub fn plan(nodes: &[Node]) -> Vec<Action> {
    let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    let mut dependents: HashMap<&str, Vec<(&Node, &OwnerReference)>> = HashMap::new();
    for n in nodes {
        for o in &n.owners {
            dependents.entry(o.uid.as_str()).or_default().push((n, o));
        }
    }
    let mut actions = Vec::new();
    for n in nodes {
        let deps = dependents
            .get(n.uid.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if n.deleting && n.finalizers.iter().any(|f| f == ORPHAN) {
            for (d, _) in deps {
                actions.push(Action::RemoveOwners {
                    node: (*d).clone(),
                    uids: vec![n.uid.clone()],
                });
            }
            if deps.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    node: n.clone(),
                    finalizer: ORPHAN,
                });
            }
            continue;
        }
        if n.waits_for_dependents()
            && !deps
                .iter()
                .any(|(_, o)| o.block_owner_deletion == Some(true))
        {
            actions.push(Action::RemoveFinalizer {
                node: n.clone(),
                finalizer: FOREGROUND,
            });
        }
        if n.owners.is_empty() || n.deleting {
            continue;
        }
        // Solid owners exist and are not themselves waiting for their dependents to go.
        let solid = n.owners.iter().any(|o| {
            by_uid
                .get(o.uid.as_str())
                .is_some_and(|owner| !owner.waits_for_dependents())
        });
        if solid {
            // Refs to owners in foreground deletion are dropped so those owners can finish.
            let waiting: Vec<String> = n
                .owners
                .iter()
                .filter(|o| {
                    by_uid
                        .get(o.uid.as_str())
                        .is_some_and(|ow| ow.waits_for_dependents())
                })
                .map(|o| o.uid.clone())
                .collect();
            if !waiting.is_empty() {
                actions.push(Action::RemoveOwners {
                    node: n.clone(),
                    uids: waiting,
                });
            }
            continue;
        }
        let owner_waiting = n.owners.iter().any(|o| by_uid.contains_key(o.uid.as_str()));
        actions.push(Action::Delete {
            node: n.clone(),
            foreground: owner_waiting && !deps.is_empty(),
            verify: !owner_waiting,
        });
    }
    actions
}

/// Runs the loop.
/// How long the collector waits after an event for more before recomputing.
const COALESCE: Duration = Duration::from_millis(200);

pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let kinds = Arc::new(kinds());
    let dirty = Arc::new(Notify::new());
    let mut stores = Vec::new();
    let mut watches = Vec::new();
    for (ar, _) in kinds.iter() {
        let writer = reflector::store::Writer::new(ar.clone());
        let reader = writer.as_reader();
        stores.push(reader);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let dirty = dirty.clone();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        watches.push(stream.for_each(move |_| {
            dirty.notify_one();
            futures::future::ready(())
        }));
    }
    let worker = async {
        for s in &stores {
            s.wait_until_ready().await?;
        }
        // Deletes issued but not yet seen in the stores: not issued again until seen or stale.
        let mut issued: HashMap<String, std::time::Instant> = HashMap::new();
        loop {
            let nodes = snapshot(&stores);
            let standing: std::collections::HashSet<&str> = nodes
                .iter()
                .filter(|n| !n.deleting)
                .map(|n| n.uid.as_str())
                .collect();
            issued.retain(|uid, at| at.elapsed() < ISSUED_TTL && standing.contains(uid.as_str()));
            let mut groups: HashMap<String, Vec<Action>> = HashMap::new();
            for action in plan(&nodes) {
                let node = action.node();
                if matches!(action, Action::Delete { .. }) {
                    if issued.contains_key(&node.uid) {
                        continue;
                    }
                    issued.insert(node.uid.clone(), std::time::Instant::now());
                }
                groups.entry(node.uid.clone()).or_default().push(action);
            }
            // Objects are independent; one object's actions keep their order. Owners are
            // looked up live once per pass, not once per dependent.
            let alive: OwnerCache = Default::default();
            futures::stream::iter(groups.into_values())
                .for_each_concurrent(CONCURRENCY, |actions| {
                    let (client, kinds, alive) = (&client, &kinds, &alive);
                    async move {
                        for action in actions {
                            if let Err(e) = execute(client, kinds, alive, action).await {
                                tracing::debug!(error = %e, "gc action");
                            }
                        }
                    }
                })
                .await;
            // Coalesce bursts of events; look again at least every 30 s. Collection is not
            // latency-critical, and each pass walks the whole graph, so passes stay at most
            // a few per second and leave the CPU to the loops that are (endpoints, scheduler).
            let _ = tokio::time::timeout(Duration::from_secs(30), dirty.notified()).await;
            tokio::time::sleep(COALESCE).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), crate::LoopError>(())
    };
    tokio::select! {
        _ = futures::future::join_all(watches) => Err(crate::LoopError::Ended("the gc watches")),
        r = worker => r,
    }
}

fn snapshot(stores: &[Store<DynamicObject>]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (kind, store) in stores.iter().enumerate() {
        for o in store.state() {
            nodes.push(Node {
                kind,
                uid: o.uid().unwrap_or_default(),
                namespace: o.namespace(),
                name: o.name_any(),
                owners: o.owner_references().to_vec(),
                finalizers: o.finalizers().to_vec(),
                deleting: o.metadata.deletion_timestamp.is_some(),
            });
        }
    }
    nodes
}

fn api_for(
    client: &Client,
    kinds: &[(ApiResource, bool)],
    kind: usize,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let (ar, namespaced) = &kinds[kind];
    match (namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

/// Whether any owner of `node` still exists, asked of the API server rather than the stores.
async fn any_owner_alive(
    client: &Client,
    kinds: &[(ApiResource, bool)],
    cache: &OwnerCache,
    node: &Node,
) -> kube::Result<bool> {
    for o in &node.owners {
        let known = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&o.uid)
            .copied();
        match known {
            Some(true) => return Ok(true),
            Some(false) => continue,
            None => {}
        }
        let Some(kind) = kinds
            .iter()
            .position(|(ar, _)| ar.kind == o.kind && ar.api_version == o.api_version)
        else {
            // An owner of a kind this collector does not know is presumed alive.
            return Ok(true);
        };
        let api = api_for(client, kinds, kind, node.namespace.as_deref());
        let alive = api
            .get_opt(&o.name)
            .await?
            .is_some_and(|live| live.uid().as_deref() == Some(o.uid.as_str()));
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(o.uid.clone(), alive);
        if alive {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn execute(
    client: &Client,
    kinds: &[(ApiResource, bool)],
    alive: &OwnerCache,
    action: Action,
) -> kube::Result<()> {
    let result = match action {
        Action::Delete {
            node,
            foreground,
            verify,
        } => {
            if verify && any_owner_alive(client, kinds, alive, &node).await? {
                return Ok(());
            }
            let api = api_for(client, kinds, node.kind, node.namespace.as_deref());
            let policy = if foreground {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            let params = DeleteParams {
                propagation_policy: Some(policy),
                preconditions: Some(Preconditions {
                    uid: Some(node.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            tracing::info!(kind = %kinds[node.kind].0.kind, namespace = ?node.namespace, name = %node.name, "gc: deleting dependent");
            api.delete(&node.name, &params).await.map(drop)
        }
        Action::RemoveOwners { node, uids } => {
            let api = api_for(client, kinds, node.kind, node.namespace.as_deref());
            let left: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !uids.contains(&o.uid))
                .collect();
            let patch = json!({"metadata": {"ownerReferences": left, "uid": node.uid}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        Action::RemoveFinalizer { node, finalizer } => {
            let api = api_for(client, kinds, node.kind, node.namespace.as_deref());
            let left: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = json!({"metadata": {"finalizers": left, "uid": node.uid}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
    };
    match result {
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[(&str, bool)], finalizers: &[&str], deleting: bool) -> Node {
        Node {
            kind: 0,
            uid: uid.into(),
            namespace: Some("ns".into()),
            name: uid.into(),
            owners: owners
                .iter()
                .map(|(o, block)| OwnerReference {
                    uid: o.to_string(),
                    name: o.to_string(),
                    kind: "ReplicaSet".into(),
                    api_version: "apps/v1".into(),
                    block_owner_deletion: Some(*block),
                    controller: Some(true),
                })
                .collect(),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            deleting,
        }
    }

    /// Actions as short strings: "delete x", "delete-fg x", "unown x [a]", "unfinalize x f".
    fn brief(nodes: &[Node]) -> Vec<String> {
        let mut out: Vec<String> = plan(nodes)
            .into_iter()
            .map(|a| match a {
                Action::Delete {
                    node,
                    foreground,
                    verify,
                } => format!(
                    "delete{}{} {}",
                    if foreground { "-fg" } else { "" },
                    if verify { "?" } else { "" },
                    node.uid
                ),
                Action::RemoveOwners { node, uids } => format!("unown {} {uids:?}", node.uid),
                Action::RemoveFinalizer { node, finalizer } => {
                    format!("unfinalize {} {finalizer}", node.uid)
                }
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn plans() {
        let cases: Vec<(&str, Vec<Node>, Vec<&str>)> = vec![
            (
                "no owners, nothing to do",
                vec![node("a", &[], &[], false)],
                vec![],
            ),
            (
                "live owner keeps its dependent",
                vec![
                    node("rs", &[], &[], false),
                    node("pod", &[("rs", true)], &[], false),
                ],
                vec![],
            ),
            (
                "owner gone: background delete, verified live",
                vec![node("pod", &[("rs", true)], &[], false)],
                vec!["delete? pod"],
            ),
            (
                "one live owner of two is enough",
                vec![
                    node("rs", &[], &[], false),
                    node("pod", &[("rs", true), ("gone", false)], &[], false),
                ],
                vec![],
            ),
            (
                "dependents already deleting are left to finish",
                vec![node("pod", &[("rs", true)], &[], true)],
                vec![],
            ),
            (
                "foreground owner: dependents go, the one with dependents of its own in foreground",
                vec![
                    node("dep", &[], &[FOREGROUND], true),
                    node("rs", &[("dep", true)], &[], false),
                    node("pod", &[("rs", true)], &[], false),
                ],
                vec!["delete-fg rs"],
            ),
            (
                "foreground owner with only a leaf dependent",
                vec![
                    node("rs", &[], &[FOREGROUND], true),
                    node("pod", &[("rs", true)], &[], false),
                ],
                vec!["delete pod"],
            ),
            (
                "foreground owner waits while a blocking dependent terminates",
                vec![
                    node("rs", &[], &[FOREGROUND], true),
                    node("pod", &[("rs", true)], &[], true),
                ],
                vec![],
            ),
            (
                "foreground owner with no blocking dependents finishes",
                vec![
                    node("rs", &[], &[FOREGROUND], true),
                    node("pod", &[("rs", false)], &[], true),
                ],
                vec!["unfinalize rs foregroundDeletion"],
            ),
            (
                "foreground owner alone finishes",
                vec![node("rs", &[], &[FOREGROUND, "other"], true)],
                vec!["unfinalize rs foregroundDeletion"],
            ),
            (
                "dependent with another live owner drops the waiting one",
                vec![
                    node("rs", &[], &[FOREGROUND], true),
                    node("x", &[], &[], false),
                    node("pod", &[("rs", true), ("x", false)], &[], false),
                ],
                vec!["unown pod [\"rs\"]"],
            ),
            (
                "orphan: refs are stripped, dependents stay",
                vec![
                    node("rs", &[], &[ORPHAN], true),
                    node("p1", &[("rs", true)], &[], false),
                    node("p2", &[("rs", true)], &[], false),
                ],
                vec!["unown p1 [\"rs\"]", "unown p2 [\"rs\"]"],
            ),
            (
                "orphan: no dependents left, finalizer goes",
                vec![node("rs", &[], &[ORPHAN], true)],
                vec!["unfinalize rs orphan"],
            ),
            (
                "an orphan finalizer without deletion does nothing",
                vec![
                    node("rs", &[], &[ORPHAN], false),
                    node("p", &[("rs", true)], &[], false),
                ],
                vec![],
            ),
        ];
        for (name, nodes, want) in cases {
            assert_eq!(brief(&nodes), want, "{name}");
        }
    }
}
