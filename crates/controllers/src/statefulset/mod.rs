//! StatefulSet → Pods with stable names `<set>-<ordinal>`, hostname = pod name and subdomain =
//! `serviceName` (so the headless Service gives each pod its DNS name), ControllerRevisions for
//! the template history (`kubectl rollout history|undo`), and status as upstream reports it.
//!
//! The decisions are in [`plan`]; this module lists, creates and deletes. As for ReplicaSets,
//! each reconcile lists the pods from the API and one set is never reconciled twice at once,
//! so no expectations are needed.
//!
//! `volumeClaimTemplates` are accepted and each becomes an `emptyDir` volume of the same name:
//! kinet has no storage provisioner, so data does not outlive the pod (documented).

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kinet_types::wellknown::{CONTROLLER_REVISION_HASH, POD_INDEX, STATEFULSET_POD_NAME};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::deployment::plan::template_hash;
use crate::events::object_ref;
use crate::owners::{controller_uid, owner_ref};
use crate::replicaset::{
    claim_pods_where, delete_pods, now_secs, pod_available, pod_from_template, pod_ready,
    report_create, requeue_for_availability, selector_of, Error, RETRY,
};
use crate::runtime::{patch_status_if_changed, run_controller, Ctx};
use plan::{PodState, Spec, Step};

/// Runs the StatefulSet controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "statefulset-controller");
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client), watcher::Config::default());
    run_controller("statefulset", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let spec = sts.spec.clone().unwrap_or_default();
    let status = sts.status.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = owner_ref(sts.as_ref());

    // No collisions yet hashes the same whether the count is unset or 0.
    let update = template_hash(&spec.template, status.collision_count.filter(|c| *c > 0));
    let revisions = sync_revisions(&ctx.client, &sts, &owner, &update).await?;
    let current = status
        .current_revision
        .clone()
        .filter(|r| revisions.iter().any(|cr| revision_hash(cr) == Some(r)))
        .unwrap_or_else(|| update.clone());

    let pods = claim_pods_where(&pods_api, &spec.selector, &owner, |_| true).await?;
    let by_ordinal: BTreeMap<usize, &Pod> = pods
        .iter()
        .filter_map(|p| Some((plan::ordinal(&name, &p.name_any())?, p)))
        .collect();
    let states: BTreeMap<usize, PodState> =
        by_ordinal.iter().map(|(i, p)| (*i, pod_state(p))).collect();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let plan_spec = Spec {
        replicas: spec.replicas.unwrap_or(1).max(0) as usize,
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        rolling_partition: (strategy.type_.as_deref() != Some("OnDelete")).then(|| {
            strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0) as usize
        }),
    };

    let objref = object_ref(sts.as_ref());
    for step in plan::plan(&plan_spec, &states, &current, &update) {
        match step {
            Step::Create(i, rev) => {
                let template = revision_template(&revisions, &rev).unwrap_or(spec.template.clone());
                let pod = stateful_pod(&sts, &template, &owner, i, &rev);
                let created = pods_api.create(&PostParams::default(), &pod).await;
                report_create(&ctx.recorder, &objref, created).await?;
            }
            Step::Delete(i) => {
                let doomed: Vec<&Pod> = by_ordinal.get(&i).copied().into_iter().collect();
                delete_pods(&pods_api, &ctx.recorder, sts.as_ref(), doomed).await?;
            }
        }
    }

    let live: Vec<&Pod> = by_ordinal
        .values()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = now_secs();
    let count = |rev: &str| live.iter().filter(|p| pod_revision(p) == rev).count() as i32;
    let rolled = plan::rolled_out(&plan_spec, &states, &update);
    let new_status = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: live.len() as i32,
        ready_replicas: Some(live.iter().filter(|p| pod_ready(p)).count() as i32),
        available_replicas: Some(
            live.iter()
                .filter(|p| pod_available(p, min_ready, now))
                .count() as i32,
        ),
        current_replicas: Some(count(if rolled { &update } else { &current })),
        updated_replicas: Some(count(&update)),
        current_revision: Some(if rolled { update.clone() } else { current }),
        update_revision: Some(update),
        collision_count: Some(status.collision_count.unwrap_or(0)),
        conditions: status.conditions.clone(),
    };
    patch_status_if_changed(&ctx.client, sts.as_ref(), sts.status.as_ref(), &new_status).await?;
    let owned: Vec<Pod> = live.into_iter().cloned().collect();
    Ok(requeue_for_availability(&owned, min_ready, now))
}

fn pod_revision(pod: &Pod) -> &str {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
        .unwrap_or("")
}

fn pod_state(pod: &Pod) -> PodState {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    PodState {
        revision: pod_revision(pod).to_string(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        finished: matches!(phase, "Succeeded" | "Failed"),
        running_and_ready: phase == "Running" && pod_ready(pod),
    }
}

/// The pod of ordinal `i`: named `<set>-<i>`, its own hostname under the set's Service, the
/// revision and identity labels, and an emptyDir for each volume claim template.
fn stateful_pod(
    sts: &StatefulSet,
    template: &PodTemplateSpec,
    owner: &OwnerReference,
    i: usize,
    revision: &str,
) -> Pod {
    let name = format!("{}-{i}", sts.name_any());
    let mut pod = pod_from_template(template, owner, Some(name.clone()));
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(CONTROLLER_REVISION_HASH.into(), revision.into());
    labels.insert(STATEFULSET_POD_NAME.into(), name.clone());
    labels.insert(POD_INDEX.into(), i.to_string());
    let set_spec = sts.spec.as_ref();
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set_spec
        .map(|s| s.service_name.clone().unwrap_or_default())
        .filter(|s| !s.is_empty());
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in set_spec
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
    {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        if !volumes.iter().any(|v| v.name == claim_name) {
            volumes.push(Volume {
                name: claim_name,
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
        }
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    pod
}

fn revision_hash(cr: &ControllerRevision) -> Option<&String> {
    cr.labels().get(CONTROLLER_REVISION_HASH)
}

/// The pod template a revision recorded.
fn revision_template(revisions: &[ControllerRevision], hash: &str) -> Option<PodTemplateSpec> {
    let cr = revisions
        .iter()
        .find(|cr| revision_hash(cr).map(String::as_str) == Some(hash))?;
    let mut template = cr.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// Makes sure the update revision has a ControllerRevision (the newest number), and prunes the
/// oldest beyond `revisionHistoryLimit`. Returns the set's revisions.
async fn sync_revisions(
    client: &Client,
    sts: &StatefulSet,
    owner: &OwnerReference,
    update: &str,
) -> Result<Vec<ControllerRevision>, Error> {
    let ns = sts.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let spec = sts.spec.clone().unwrap_or_default();
    let sel = selector_of(&spec.selector)?;
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels_from(&sel))
        .await?
        .items
        .into_iter()
        .filter(|cr| controller_uid(&cr.metadata) == Some(owner.uid.as_str()))
        .collect();
    revisions.sort_by_key(|cr| cr.revision);
    let newest = revisions.last().map(|cr| cr.revision).unwrap_or(0);
    match revisions
        .iter()
        .position(|cr| revision_hash(cr).map(String::as_str) == Some(update))
    {
        Some(i) if revisions[i].revision == newest => {}
        Some(i) => {
            // Rolled back to an older template: it becomes the newest revision again.
            let mut cr = revisions.remove(i);
            cr.revision = newest + 1;
            let cr = api
                .replace(&cr.name_any(), &PostParams::default(), &cr)
                .await?;
            revisions.push(cr);
        }
        None => {
            let mut labels = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(CONTROLLER_REVISION_HASH.into(), update.into());
            let mut template = serde_json::to_value(&spec.template).unwrap_or_default();
            template["$patch"] = json!("replace");
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{update}", sts.name_any())),
                    labels: Some(labels),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                data: Some(RawExtension(json!({"spec": {"template": template}}))),
                revision: newest + 1,
            };
            match api.create(&PostParams::default(), &cr).await {
                Ok(cr) => revisions.push(cr),
                // Made by an earlier reconcile whose list this one raced: seen next time.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let current = sts.status.as_ref().and_then(|s| s.current_revision.clone());
    let prunable: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|cr| {
            let h = revision_hash(cr);
            h.map(String::as_str) != Some(update) && h != current.as_ref()
        })
        .collect();
    for cr in prunable.iter().take(prunable.len().saturating_sub(limit)) {
        match api.delete(&cr.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(revisions)
}
