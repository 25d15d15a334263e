//! The disruption controller: each PodDisruptionBudget's status says how many of its pods are
//! healthy, how many must stay so, and so how many may be disrupted now, as
//! kube-controller-manager's does (`kubectl get pdb` shows ALLOWED DISRUPTIONS from it).
//! Pods the eviction API took a disruption for (`status.disruptedPods`) count as gone until
//! they are deleted, or for two minutes; the status is written only over the budget it was
//! computed from, so an eviction's decrement is never overwritten.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::core::SelectorExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::deployment::plan::scaled_value;
use crate::events::{object_ref, EventType};
use crate::replicaset::{pod_ready, selector_of, Error};
use crate::runtime::{patch_status_over, run_controller, Ctx};

/// How many pods a budget expects, and how many of them must stay healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub expected: i32,
    pub desired_healthy: i32,
}

/// The budget's need given its `pods` and, when it is a percentage or maxUnavailable, the
/// replicas its pods' controllers ask for (`scale`).
pub fn need(
    pdb: &PodDisruptionBudget,
    pods: usize,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<Need, String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max_unavailable) = &spec.max_unavailable {
        let expected = scale()?;
        let unavailable = scaled_value(max_unavailable, expected, true)?;
        return Ok(Need {
            expected,
            desired_healthy: (expected - unavailable).max(0),
        });
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok(Need {
            expected: pods as i32,
            desired_healthy: *n,
        }),
        Some(pct @ IntOrString::String(_)) => {
            let expected = scale()?;
            Ok(Need {
                expected,
                desired_healthy: scaled_value(pct, expected, true)?,
            })
        }
        None => Ok(Need {
            expected: pods as i32,
            desired_healthy: 0,
        }),
    }
}

/// The status for `healthy` pods against `need` (or the failure that kept it from being
/// computed), keeping the condition's transition time when its status does not change.
pub fn status_for(
    pdb: &PodDisruptionBudget,
    healthy: i32,
    need: Result<Need, String>,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let old = pdb.status.clone().unwrap_or_default();
    let (need, allowed, reason, message) = match need {
        Ok(need) => {
            let allowed = if need.expected <= 0 {
                0
            } else {
                (healthy - need.desired_healthy).max(0)
            };
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            (need, allowed, reason, String::new())
        }
        Err(e) => (
            Need {
                expected: 0,
                desired_healthy: 0,
            },
            0,
            "SyncFailed",
            e,
        ),
    };
    let status = if allowed > 0 { "True" } else { "False" };
    let since = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        disrupted_pods: old.disrupted_pods,
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: need.desired_healthy,
        expected_pods: need.expected,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message,
            last_transition_time: since,
            observed_generation: pdb.metadata.generation,
        }]),
    }
}

/// How long a pod the eviction API took a disruption for may take to be deleted
/// (upstream's `DeletionTimeout`); after that it counts again.
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The evicted pods of `old` still on their way out at `now`, and when the first of them
/// counts again (`buildDisruptedPodMap`).
pub fn still_disrupted<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    old: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for pod in pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let Some(since) = old.and_then(|o| o.get(&pod.name_any())) else {
            continue;
        };
        let elapsed = Duration::try_from(now.duration_since(since.0)).unwrap_or_default();
        if let Some(left) = DELETION_TIMEOUT
            .checked_sub(elapsed)
            .filter(|l| !l.is_zero())
        {
            recheck = Some(recheck.map_or(left, |r| r.min(left)));
            kept.insert(pod.name_any(), since.clone());
        }
    }
    (kept, recheck)
}

/// What the loop reads, from reflector stores: pods, and the controllers whose scale a
/// percentage or maxUnavailable budget needs.
#[derive(Clone)]
struct Stores {
    budgets: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

/// A reflector store of `K`, and the stream that keeps it, which the controller drives.
fn reflect<K>(client: &Client) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>>)
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (store, stream)
}

type Budgets = Vec<ObjectRef<PodDisruptionBudget>>;

/// The budgets of `pod`'s namespace whose selector selects it.
fn selecting(budgets: &Store<PodDisruptionBudget>, pod: &Pod) -> Budgets {
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace() == pod.namespace() && selects(b, pod))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// policy/v1: an empty selector selects every pod of the namespace, a missing one none.
fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    selector
        .and_then(|s| selector_of(s).ok())
        .is_some_and(|s| s.matches(pod.labels()))
}

/// Runs the loop.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "controllermanager");
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let (pods, pod_events) = reflect::<Pod>(&client);
    let (replicasets, rs_events) = reflect::<ReplicaSet>(&client);
    let (deployments, deployment_events) = reflect::<Deployment>(&client);
    let (statefulsets, statefulset_events) = reflect::<StatefulSet>(&client);
    let stores = Stores {
        budgets: controller.store(),
        pods,
        replicasets,
        deployments,
        statefulsets,
    };
    // A pod's change reconciles the budgets that select it now and those that did before (a
    // relabelled pod leaves its budget).
    let budgets = stores.budgets.clone();
    let selected: Mutex<HashMap<ObjectRef<Pod>, Budgets>> = Mutex::default();
    let pods_store = stores.pods.clone();
    let on_pod = move |pod: Pod| {
        let key = ObjectRef::from_obj(&pod);
        let now = selecting(&budgets, &pod);
        let mut selected = selected.lock().unwrap_or_else(|e| e.into_inner());
        let before = if pods_store.get(&key).is_some() {
            selected.insert(key, now.clone())
        } else {
            selected.remove(&key)
        };
        before.into_iter().flatten().chain(now).collect::<Vec<_>>()
    };
    let controller = controller
        .watches_stream(pod_events, on_pod)
        .watches_stream(rs_events, none::<ReplicaSet>)
        .watches_stream(deployment_events, none::<Deployment>)
        .watches_stream(statefulset_events, none::<StatefulSet>);
    let reconcile = move |pdb, ctx| reconcile(pdb, ctx, stores.clone());
    run_controller(
        "disruption",
        controller,
        reconcile,
        ctx,
        Duration::from_secs(1),
    )
    .await;
    Ok(())
}

/// The controllers' watches only keep their stores: a scale change reaches the budgets through
/// the pods it creates or deletes.
fn none<K>(_: K) -> std::iter::Empty<ObjectRef<PodDisruptionBudget>> {
    std::iter::empty()
}

fn key<K: kube::Resource<DynamicType = ()>>(ns: &str, name: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(ns)
}

/// The replicas the controllers of `pods` ask for, as upstream's scale finders read them.
fn expected_scale(stores: &Stores, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, String> {
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    let missing = |pod: &Pod| format!("found no controllers for pod {:?}", pod.name_any());
    for pod in pods {
        let owner = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .ok_or_else(|| format!("found no controller ref for pod {:?}", pod.name_any()))?;
        if !seen.insert(owner.uid.clone()) {
            continue;
        }
        total += match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = stores
                    .replicasets
                    .get(&key(ns, &owner.name))
                    .ok_or_else(|| missing(pod))?;
                let deployment = rs
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Deployment");
                match deployment {
                    Some(d) if seen.insert(d.uid.clone()) => stores
                        .deployments
                        .get(&key(ns, &d.name))
                        .ok_or_else(|| missing(pod))?
                        .spec
                        .as_ref()
                        .and_then(|s| s.replicas)
                        .unwrap_or(1),
                    Some(_) => 0,
                    None => rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                }
            }
            "StatefulSet" => stores
                .statefulsets
                .get(&key(ns, &owner.name))
                .ok_or_else(|| missing(pod))?
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1),
            _ => return Err(missing(pod)),
        };
    }
    Ok(total)
}

async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    ctx: Arc<Ctx>,
    stores: Stores,
) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    // A budget computed before the stores are filled would count too few pods.
    let ready = futures::try_join!(
        stores.pods.wait_until_ready(),
        stores.replicasets.wait_until_ready(),
        stores.deployments.wait_until_ready(),
        stores.statefulsets.wait_until_ready(),
    );
    if ready.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods: Vec<Arc<Pod>> = stores
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns) && selects(&pdb, p))
        .collect();
    let old = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let (disrupted, recheck) =
        still_disrupted(pods.iter().map(AsRef::as_ref), old, Timestamp::now());
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .count() as i32;
    let scale = if pods.is_empty() {
        Ok(0)
    } else {
        expected_scale(&stores, &ns, &pods)
    };
    let need = need(&pdb, pods.len(), || scale.clone());
    if let Err(e) = &need {
        ctx.recorder
            .publish(
                &object_ref(pdb.as_ref()),
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                e,
            )
            .await;
    }
    let mut status = status_for(&pdb, healthy, need, Timestamp::now());
    status.disrupted_pods = (!disrupted.is_empty()).then_some(disrupted);
    patch_status_over(&ctx.client, pdb.as_ref(), pdb.status.as_ref(), &status).await?;
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn the_need_follows_min_available_or_max_unavailable() {
        let n = |spec, pods, scale: i32| need(&pdb(spec), pods, || Ok(scale)).unwrap();
        assert_eq!(
            n(json!({"minAvailable": 2}), 3, 9),
            Need {
                expected: 3,
                desired_healthy: 2
            }
        );
        assert_eq!(
            n(json!({"minAvailable": "50%"}), 3, 5),
            Need {
                expected: 5,
                desired_healthy: 3
            }
        );
        assert_eq!(
            n(json!({"maxUnavailable": 1}), 3, 4),
            Need {
                expected: 4,
                desired_healthy: 3
            }
        );
        assert_eq!(
            n(json!({"maxUnavailable": "30%"}), 3, 10),
            Need {
                expected: 10,
                desired_healthy: 7
            }
        );
        assert_eq!(
            need(&pdb(json!({"maxUnavailable": 1})), 1, || Err(
                "found no controller ref for pod \"p\"".into()
            )),
            Err("found no controller ref for pod \"p\"".into())
        );
    }

    #[test]
    fn a_budget_selects_by_labels_an_empty_selector_all_and_none_without_one() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "front"}}}),
        )
        .unwrap();
        assert!(selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "web"}}})),
            &pod
        ));
        assert!(!selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "db"}}})),
            &pod
        ));
        let expression = json!({"selector": {"matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["front"]}]}});
        assert!(!selects(&pdb(expression), &pod));
        assert!(selects(&pdb(json!({"selector": {}})), &pod));
        assert!(!selects(&pdb(json!({"minAvailable": 1})), &pod));
    }

    #[test]
    fn disruptions_allowed_and_the_condition() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b = pdb(json!({"minAvailable": 2}));
        let s = status_for(
            &b,
            3,
            Ok(Need {
                expected: 3,
                desired_healthy: 2,
            }),
            now,
        );
        assert_eq!(
            (
                s.disruptions_allowed,
                s.current_healthy,
                s.desired_healthy,
                s.expected_pods
            ),
            (1, 3, 2, 3)
        );
        assert_eq!(s.observed_generation, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );
        let s = status_for(
            &b,
            2,
            Ok(Need {
                expected: 3,
                desired_healthy: 2,
            }),
            now,
        );
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.conditions.unwrap()[0].reason, "InsufficientPods");
        let failed = status_for(&b, 3, Err("no controller".into()), now);
        assert_eq!(failed.disruptions_allowed, 0);
        assert_eq!(failed.conditions.unwrap()[0].reason, "SyncFailed");
    }

    #[test]
    fn evicted_pods_count_as_gone_until_deleted_or_two_minutes_pass() {
        let now: Timestamp = "2026-01-01T00:02:00Z".parse().unwrap();
        let pod = |name: &str, deleting: bool| -> Pod {
            let mut meta = json!({"name": name});
            if deleting {
                meta["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
            }
            serde_json::from_value(json!({"metadata": meta})).unwrap()
        };
        let at = |t: &str| Time(t.parse().unwrap());
        let old = BTreeMap::from([
            ("fresh".to_string(), at("2026-01-01T00:01:30Z")),
            ("stale".to_string(), at("2026-01-01T00:00:00Z")),
            ("deleting".to_string(), at("2026-01-01T00:01:50Z")),
            ("gone".to_string(), at("2026-01-01T00:01:50Z")),
        ]);
        let pods = [
            pod("fresh", false),
            pod("stale", false),
            pod("deleting", true),
            pod("other", false),
        ];
        let (kept, recheck) = still_disrupted(&pods, Some(&old), now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["fresh"]);
        assert_eq!(recheck, Some(Duration::from_secs(90)));
        assert_eq!(still_disrupted(&pods, None, now), (BTreeMap::new(), None));
    }
}
