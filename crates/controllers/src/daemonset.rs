//! DaemonSet → one pod per eligible node: Ready, matching nodeSelector/affinity, and with every
//! NoSchedule/NoExecute taint tolerated. Pods carry required node affinity on the node's
//! `metadata.name` (as upstream), so the scheduler binds them. A `controller-revision-hash`
//! label marks the template a pod came from (no ControllerRevision in kinet), and RollingUpdate
//! replaces old pods at most maxUnavailable at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec, Toleration};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::deployment::plan::{scaled_value, template_hash};
use crate::events::object_ref;
use crate::nodelifecycle::health::{NOT_READY_TAINT, UNREACHABLE_TAINT};
use crate::owners::owner_ref;
use crate::replicaset::{
    claim_pods, delete_pods, now_secs, pod_available, pod_from_template, pod_ready, report_create,
    requeue_for_availability, Error, RETRY,
};
use crate::runtime::{patch_status_if_changed, run_controller, Ctx};
use crate::scheduler::place::{
    matches_node_selector_and_affinity, node_ready, tolerates, NodeInfo,
};

/// The label holding the template hash of a daemon pod.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Runs the DaemonSet controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "daemonset-controller");
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let controller = controller
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        // Any node change may change where every DaemonSet should run.
        .watches(
            Api::<Node>::all(client),
            watcher::Config::default(),
            move |_| {
                store
                    .state()
                    .iter()
                    .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                    .collect::<Vec<_>>()
            },
        );
    run_controller("daemonset", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

/// The tolerations upstream adds to every daemon pod, so cordoned or briefly unhealthy nodes
/// keep their daemons.
fn daemon_tolerations() -> Vec<Toleration> {
    [
        (NOT_READY_TAINT, "NoExecute"),
        (UNREACHABLE_TAINT, "NoExecute"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .into_iter()
    .map(|(k, e)| Toleration {
        key: Some(k.into()),
        operator: Some("Exists".into()),
        effect: Some(e.into()),
        ..Default::default()
    })
    .collect()
}

/// Whether a daemon pod from `template` should run on `node`.
pub fn should_run(template: &PodTemplateSpec, node: &Node) -> bool {
    let spec = template.spec.clone().unwrap_or_default();
    let info = NodeInfo::from_node(node);
    let mut tols = spec.tolerations.clone().unwrap_or_default();
    tols.extend(daemon_tolerations());
    node_ready(node)
        && node.metadata.deletion_timestamp.is_none()
        && matches_node_selector_and_affinity(&spec, &info.name, &info.labels)
        && node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|t| tols.iter().any(|tol| tolerates(tol, t)))
}

/// The node a daemon pod is for: its nodeName, else its metadata.name affinity.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// What one reconcile does: nodes to create a pod on, pods (by name) to delete.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<String>,
    pub delete: Vec<String>,
}

/// A daemon pod as the plan sees it.
#[derive(Debug, Clone)]
pub struct DaemonPod {
    pub name: String,
    pub node: Option<String>,
    pub current: bool,
    pub available: bool,
}

/// Pure planning: missing pods created, extra or misplaced pods deleted (keeping the first
/// listed, so callers list oldest first), and with `max_unavailable` set, old-template pods
/// replaced while fewer than that many daemons are unavailable.
pub fn plan(
    should: &BTreeMap<String, bool>,
    pods: &[DaemonPod],
    max_unavailable: Option<i32>,
) -> Plan {
    let mut out = Plan::default();
    let mut by_node: HashMap<&str, Vec<&DaemonPod>> = HashMap::new();
    for p in pods {
        match p.node.as_deref() {
            Some(n) if should.get(n) == Some(&true) => by_node.entry(n).or_default().push(p),
            _ => out.delete.push(p.name.clone()),
        }
    }
    let mut unavailable = 0;
    let mut old = Vec::new();
    for (node, _) in should.iter().filter(|(_, run)| **run) {
        match by_node.get(node.as_str()).map(Vec::as_slice) {
            None | Some([]) => {
                out.create.push(node.clone());
                unavailable += 1;
            }
            Some([keep, extra @ ..]) => {
                out.delete.extend(extra.iter().map(|p| p.name.clone()));
                if !keep.available {
                    unavailable += 1;
                }
                if !keep.current {
                    old.push(*keep);
                }
            }
        }
    }
    if let Some(max) = max_unavailable {
        // Unavailable old pods first: replacing them costs nothing.
        old.sort_by_key(|p| p.available);
        for p in old {
            if !p.available {
                out.delete.push(p.name.clone());
            } else if unavailable < max {
                out.delete.push(p.name.clone());
                unavailable += 1;
            }
        }
    }
    out
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = owner_ref(ds.as_ref());
    let mut pods = claim_pods(&pods_api, &spec.selector, &owner).await?;
    pods.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.name_any(),
        )
    });
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;

    let hash = template_hash(&spec.template, None);
    let now = now_secs();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let should: BTreeMap<String, bool> = nodes
        .iter()
        .map(|n| (n.name_any(), should_run(&spec.template, n)))
        .collect();
    let daemon_pods: Vec<DaemonPod> = pods
        .iter()
        .map(|p| DaemonPod {
            name: p.name_any(),
            node: target_node(p),
            current: p.labels().get(HASH_LABEL) == Some(&hash),
            available: pod_available(p, min_ready, now),
        })
        .collect();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let max_unavailable = match strategy.type_.as_deref() {
        Some("OnDelete") => None,
        _ => {
            let desired = should.values().filter(|r| **r).count() as i32;
            let mu = strategy
                .rolling_update
                .and_then(|r| r.max_unavailable)
                .unwrap_or(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1));
            Some(
                scaled_value(&mu, desired, false)
                    .map_err(Error::Selector)?
                    .max(1),
            )
        }
    };
    let todo = plan(&should, &daemon_pods, max_unavailable);

    let objref = object_ref(ds.as_ref());
    for node in &todo.create {
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut pod = pod_from_template(&template, &owner, None);
        let pspec = pod.spec.get_or_insert_with(Default::default);
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}});
        pspec.affinity =
            Some(serde_json::from_value(affinity).map_err(|e| Error::Selector(e.to_string()))?);
        let tols = pspec.tolerations.get_or_insert_with(Vec::new);
        let missing: Vec<Toleration> = daemon_tolerations()
            .into_iter()
            .filter(|t| !tols.contains(t))
            .collect();
        tols.extend(missing);
        let created = pods_api.create(&PostParams::default(), &pod).await;
        report_create(&ctx.recorder, &objref, created).await?;
    }
    let doomed: Vec<&Pod> = pods
        .iter()
        .filter(|p| todo.delete.contains(&p.name_any()))
        .collect();
    delete_pods(&pods_api, &ctx.recorder, ds.as_ref(), doomed).await?;

    // Status from what was observed; the pod events of these changes trigger the next pass.
    let placed: Vec<(&DaemonPod, &Pod)> = daemon_pods.iter().zip(&pods).collect();
    let on_wanted = |p: &&(&DaemonPod, &Pod)| {
        p.0.node
            .as_ref()
            .is_some_and(|n| should.get(n) == Some(&true))
    };
    let desired = should.values().filter(|r| **r).count() as i32;
    let mut scheduled: Vec<&String> = placed
        .iter()
        .filter(on_wanted)
        .filter_map(|p| p.0.node.as_ref())
        .collect();
    scheduled.sort();
    scheduled.dedup();
    let mut misplaced: Vec<&String> = placed
        .iter()
        .filter(|p| !on_wanted(p))
        .filter_map(|p| p.0.node.as_ref())
        .collect();
    misplaced.sort();
    misplaced.dedup();
    let available = placed
        .iter()
        .filter(on_wanted)
        .filter(|p| p.0.available)
        .count() as i32;
    let status = DaemonSetStatus {
        current_number_scheduled: scheduled.len() as i32,
        desired_number_scheduled: desired,
        number_misscheduled: misplaced.len() as i32,
        number_ready: placed
            .iter()
            .filter(on_wanted)
            .filter(|p| pod_ready(p.1))
            .count() as i32,
        number_available: Some(available),
        number_unavailable: Some((desired - available).max(0)),
        updated_number_scheduled: Some(
            placed
                .iter()
                .filter(on_wanted)
                .filter(|p| p.0.current)
                .count() as i32,
        ),
        observed_generation: ds.metadata.generation,
        collision_count: None,
        conditions: None,
    };
    patch_status_if_changed(&ctx.client, ds.as_ref(), ds.status.as_ref(), &status).await?;
    Ok(requeue_for_availability(&pods, min_ready, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
        .unwrap()
    }

    fn template(spec: serde_json::Value) -> PodTemplateSpec {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        serde_json::from_value(json!({"spec": spec})).unwrap()
    }

    #[test]
    fn should_run_table() {
        let cp_taint =
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        let cases = [
            (
                "plain",
                node("w", true, json!({}), json!([])),
                json!({}),
                true,
            ),
            (
                "not ready",
                node("w", false, json!({}), json!([])),
                json!({}),
                false,
            ),
            (
                "control plane",
                node("cp", true, json!({}), cp_taint.clone()),
                json!({}),
                false,
            ),
            (
                "control plane tolerated",
                node("cp", true, json!({}), cp_taint),
                json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}),
                true,
            ),
            (
                "selector miss",
                node("w", true, json!({"zone": "a"}), json!([])),
                json!({"nodeSelector": {"zone": "b"}}),
                false,
            ),
            (
                "selector hit",
                node("w", true, json!({"zone": "b"}), json!([])),
                json!({"nodeSelector": {"zone": "b"}}),
                true,
            ),
            (
                "prefer taint ignored",
                node(
                    "w",
                    true,
                    json!({}),
                    json!([{"key": "x", "effect": "PreferNoSchedule"}]),
                ),
                json!({}),
                true,
            ),
        ];
        for (name, n, spec, want) in cases {
            assert_eq!(should_run(&template(spec), &n), want, "{name}");
        }
    }

    fn dp(name: &str, node: &str, current: bool, available: bool) -> DaemonPod {
        DaemonPod {
            name: name.into(),
            node: Some(node.into()),
            current,
            available,
        }
    }

    #[test]
    fn plan_table() {
        let should: BTreeMap<String, bool> =
            [("a".into(), true), ("b".into(), true), ("c".into(), false)].into();
        let cases = [
            (
                "fresh",
                vec![],
                Some(1),
                Plan {
                    create: vec!["a".into(), "b".into()],
                    delete: vec![],
                },
            ),
            (
                "steady",
                vec![dp("pa", "a", true, true), dp("pb", "b", true, true)],
                Some(1),
                Plan::default(),
            ),
            (
                "extra and misplaced",
                vec![
                    dp("pa", "a", true, true),
                    dp("pa2", "a", true, true),
                    dp("pb", "b", true, true),
                    dp("pc", "c", true, true),
                ],
                Some(1),
                Plan {
                    create: vec![],
                    delete: vec!["pc".into(), "pa2".into()],
                },
            ),
            (
                "rolling one at a time",
                vec![dp("pa", "a", false, true), dp("pb", "b", false, true)],
                Some(1),
                Plan {
                    create: vec![],
                    delete: vec!["pa".into()],
                },
            ),
            (
                "rolling waits for availability",
                vec![dp("pa", "a", true, false), dp("pb", "b", false, true)],
                Some(1),
                Plan::default(),
            ),
            (
                "unavailable old pods go at once",
                vec![dp("pa", "a", false, false), dp("pb", "b", false, false)],
                Some(1),
                Plan {
                    create: vec![],
                    delete: vec!["pa".into(), "pb".into()],
                },
            ),
            (
                "on delete",
                vec![dp("pa", "a", false, true), dp("pb", "b", false, true)],
                None,
                Plan::default(),
            ),
        ];
        for (name, pods, max, want) in cases {
            assert_eq!(plan(&should, &pods, max), want, "{name}");
        }
    }

    #[test]
    fn target_from_affinity() {
        let p: Pod = serde_json::from_value(json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}}}}})).unwrap();
        assert_eq!(target_node(&p).as_deref(), Some("n7"));
    }
}
