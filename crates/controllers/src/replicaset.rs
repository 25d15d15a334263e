//! ReplicaSet → Pods: adopt matching orphans, create what is missing from the template, delete
//! the surplus (unscheduled, then not-ready, then newest first), and report status.
//!
//! Each reconcile lists the selected pods straight from the API (not a cache), and
//! `kube::runtime::Controller` never runs two reconciles of one ReplicaSet at once, so a
//! reconcile always sees the pods the previous one created: no expectations are needed and a
//! restart converges without duplicates.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::events::{object_ref, EventType, Recorder};
use crate::owners::{controller_uid, owner_ref, pod_active};
use crate::runtime::{patch_status_if_changed, run_controller, Ctx};

/// How soon a failed reconcile of a workload is retried.
pub(crate) const RETRY: Duration = Duration::from_secs(2);

/// Why a reconcile failed; the controller retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid selector: {0}")]
    Selector(String),
}

/// Runs the ReplicaSet controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "replicaset-controller");
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client), watcher::Config::default());
    run_controller("replicaset", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = owner_ref(rs.as_ref());
    let pods = claim_pods(&pods_api, &spec.selector, &owner).await?;

    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if pods.len() < want {
        let template = spec.template.clone().unwrap_or_default();
        create_pods(
            &pods_api,
            &ctx.recorder,
            rs.as_ref(),
            &template,
            &owner,
            want - pods.len(),
        )
        .await?;
    } else if pods.len() > want {
        let doomed = pods_to_delete(&pods, pods.len() - want);
        delete_pods(&pods_api, &ctx.recorder, rs.as_ref(), doomed).await?;
    }

    let now = now_secs();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let status = ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(
            pods.iter()
                .filter(|p| kinet_selectors::set_matches(&template_labels, p.labels()))
                .count() as i32,
        ),
        ready_replicas: Some(pods.iter().filter(|p| pod_ready(p)).count() as i32),
        available_replicas: Some(
            pods.iter()
                .filter(|p| pod_available(p, min_ready, now))
                .count() as i32,
        ),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    patch_status_if_changed(&ctx.client, rs.as_ref(), rs.status.as_ref(), &status).await?;
    Ok(requeue_for_availability(&pods, min_ready, now))
}

/// The active pods this object controls, after adopting matching orphans. Pods controlled by
/// someone else, terminating or finished pods are left out.
pub(crate) async fn claim_pods(
    api: &Api<Pod>,
    selector: &LabelSelector,
    owner: &OwnerReference,
) -> Result<Vec<Pod>, Error> {
    claim_pods_where(api, selector, owner, pod_active).await
}

/// [`claim_pods`] keeping the pods `keep` accepts (a StatefulSet must see its terminating and
/// finished pods too, since their names are not free yet).
pub(crate) async fn claim_pods_where(
    api: &Api<Pod>,
    selector: &LabelSelector,
    owner: &OwnerReference,
    keep: fn(&Pod) -> bool,
) -> Result<Vec<Pod>, Error> {
    let sel = selector_of(selector)?;
    if sel.selects_all() {
        // An empty selector would claim every pod in the namespace; upstream rejects it too.
        return Ok(vec![]);
    }
    let listed = api
        .list(&ListParams::default().labels_from(&sel))
        .await?
        .items;
    let mut pods = Vec::new();
    for mut pod in listed.into_iter().filter(keep) {
        match controller_uid(&pod.metadata) {
            Some(uid) if uid == owner.uid => pods.push(pod),
            Some(_) => {}
            None => {
                let mut refs = pod.owner_references().to_vec();
                refs.push(owner.clone());
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
                match api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                {
                    Ok(_) => {
                        pod.metadata.owner_references = Some(refs);
                        pods.push(pod);
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(pods)
}

pub(crate) fn selector_of(selector: &LabelSelector) -> Result<Selector, Error> {
    Selector::try_from(selector.clone()).map_err(|e| Error::Selector(e.to_string()))
}

/// Creates `n` pods from `template`, controlled by `owner`, with SuccessfulCreate events.
pub(crate) async fn create_pods<K: Resource<DynamicType = ()>>(
    api: &Api<Pod>,
    recorder: &Recorder,
    obj: &K,
    template: &PodTemplateSpec,
    owner: &OwnerReference,
    n: usize,
) -> Result<(), Error> {
    let pod = pod_from_template(template, owner, None);
    let pp = PostParams::default();
    let results: Vec<kube::Result<Pod>> = stream::iter(0..n)
        .map(|_| api.create(&pp, &pod))
        .buffer_unordered(16)
        .collect()
        .await;
    let objref = object_ref(obj);
    for r in results {
        report_create(recorder, &objref, r).await?;
    }
    Ok(())
}

/// Reports a pod creation as a SuccessfulCreate or FailedCreate event, passing its error on.
pub(crate) async fn report_create(
    recorder: &Recorder,
    objref: &ObjectReference,
    created: kube::Result<Pod>,
) -> Result<(), Error> {
    match created {
        Ok(p) => {
            recorder
                .publish(
                    objref,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {}", p.name_any()),
                )
                .await;
            Ok(())
        }
        Err(e) => {
            let why = crate::events::error_text(&e);
            recorder
                .publish(
                    objref,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {why}"),
                )
                .await;
            Err(e.into())
        }
    }
}

/// Deletes the given pods, with SuccessfulDelete events; already-gone pods are fine.
pub(crate) async fn delete_pods<K: Resource<DynamicType = ()>>(
    api: &Api<Pod>,
    recorder: &Recorder,
    obj: &K,
    pods: Vec<&Pod>,
) -> Result<(), Error> {
    let objref = object_ref(obj);
    for pod in pods {
        let dp = DeleteParams {
            preconditions: pod
                .metadata
                .uid
                .clone()
                .map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => {
                recorder
                    .publish(
                        &objref,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {}", pod.name_any()),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A pod from a template: `generateName` is `<owner>-`, labels and annotations from the template.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    owner: &OwnerReference,
    name: Option<String>,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: name.is_none().then(|| format!("{}-", owner.name)),
            name,
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The Ready condition is True.
pub(crate) fn pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod became Ready (epoch seconds; 0 if unknown), if it is Ready.
fn ready_since(pod: &Pod) -> Option<i64> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0),
    )
}

/// Ready for at least `min_ready` seconds at `now`.
pub(crate) fn pod_available(pod: &Pod, min_ready: i32, now: i64) -> bool {
    ready_since(pod).is_some_and(|since| min_ready <= 0 || since + i64::from(min_ready) <= now)
}

/// When to look at an object again: when its next ready pod becomes available, since that
/// happens minReadySeconds after readiness with no event to say so; else in five minutes.
pub(crate) fn requeue_for_availability(pods: &[Pod], min_ready: i32, now: i64) -> Action {
    match next_available_in(pods, min_ready, now) {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1) as u64)),
        None => Action::requeue(Duration::from_secs(300)),
    }
}

/// Seconds until the next ready-but-not-yet-available pod becomes available.
pub(crate) fn next_available_in(pods: &[Pod], min_ready: i32, now: i64) -> Option<i64> {
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(ready_since)
        .map(|since| since + i64::from(min_ready) - now)
        .filter(|d| *d >= 0)
        .min()
        .map(|d| d + 1)
}

pub(crate) fn now_secs() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// Which `n` pods to delete: upstream's ActivePods order (unscheduled, pending, not ready, ready
/// for less time, newest first).
pub(crate) fn pods_to_delete(pods: &[Pod], n: usize) -> Vec<&Pod> {
    let mut sorted: Vec<&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| delete_order(a, b));
    sorted.truncate(n);
    sorted
}

fn delete_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 2,
        Some("Unknown") => 1,
        _ => 0,
    };
    let created = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
    };
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(pod_ready(a).cmp(&pod_ready(b)))
        // Both ready: the one ready more recently goes first.
        .then(ready_since(b).cmp(&ready_since(a)))
        // Newest first; a pod without a timestamp counts as newest.
        .then(match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then(a.name_any().cmp(&b.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready_at: Option<&str>,
        created: &str,
    ) -> Pod {
        let conditions = match ready_at {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([{"type": "Ready", "status": "False"}]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn deletion_order() {
        let pods = vec![
            pod(
                "ready-old",
                Some("n"),
                "Running",
                Some("2024-01-01T00:00:10Z"),
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "ready-new",
                Some("n"),
                "Running",
                Some("2024-01-01T00:01:10Z"),
                "2024-01-01T00:01:00Z",
            ),
            pod(
                "unready",
                Some("n"),
                "Running",
                None,
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "pending",
                Some("n"),
                "Pending",
                None,
                "2024-01-01T00:00:00Z",
            ),
            pod("unscheduled", None, "Pending", None, "2024-01-01T00:00:00Z"),
        ];
        let cases = [
            (1, vec!["unscheduled"]),
            (3, vec!["unscheduled", "pending", "unready"]),
            (4, vec!["unscheduled", "pending", "unready", "ready-new"]),
            (
                9,
                vec![
                    "unscheduled",
                    "pending",
                    "unready",
                    "ready-new",
                    "ready-old",
                ],
            ),
        ];
        for (n, want) in cases {
            let got: Vec<String> = pods_to_delete(&pods, n)
                .iter()
                .map(|p| p.name_any())
                .collect();
            assert_eq!(got, want, "n={n}");
        }
        // Same readiness: the newest goes first.
        let twins = vec![
            pod("a", Some("n"), "Running", None, "2024-01-01T00:00:00Z"),
            pod("b", Some("n"), "Running", None, "2024-01-01T00:05:00Z"),
        ];
        assert_eq!(pods_to_delete(&twins, 1)[0].name_any(), "b");
    }

    #[test]
    fn availability() {
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let p = pod(
            "p",
            Some("n"),
            "Running",
            Some(&t0.to_string()),
            "2024-01-01T00:00:00Z",
        );
        let now = t0.as_second();
        let cases = [(0, 0, true), (10, 5, false), (10, 10, true), (10, 20, true)];
        for (min_ready, after, want) in cases {
            assert_eq!(
                pod_available(&p, min_ready, now + after),
                want,
                "min {min_ready} after {after}"
            );
        }
        assert_eq!(
            next_available_in(std::slice::from_ref(&p), 10, now + 4),
            Some(7)
        );
        assert_eq!(next_available_in(std::slice::from_ref(&p), 0, now), None);
        assert!(!pod_available(
            &pod("q", Some("n"), "Running", None, "2024-01-01T00:00:00Z"),
            0,
            now
        ));
    }

    #[test]
    fn template_to_pod() {
        let t: PodTemplateSpec = serde_json::from_value(json!({"metadata": {"labels": {"app": "x"}, "annotations": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}})).unwrap();
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-abc".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = pod_from_template(&t, &owner, None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.labels().get("app").map(String::as_str), Some("x"));
        assert_eq!(controller_uid(&p.metadata), Some("u1"));
        assert_eq!(p.spec.unwrap().containers[0].name, "c");
    }
}
