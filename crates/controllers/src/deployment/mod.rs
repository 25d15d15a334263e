//! Deployment → ReplicaSets: one ReplicaSet per pod template (named `<deploy>-<hash>`), rolled
//! from old to new by RollingUpdate or Recreate, with revision annotations, history cleanup and
//! the status `kubectl rollout status` waits on.
//!
//! Each reconcile lists the ReplicaSets straight from the API and makes one step (the rollout
//! arithmetic is in [`plan`]); ReplicaSet status changes trigger the next step.

pub mod plan;
mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::{object_ref, EventType};
use crate::owners::{controller_uid, owner_ref};
use crate::replicaset::{selector_of, RETRY};
use crate::runtime::{run_controller, Ctx};
use plan::{
    equal_ignore_hash, fenceposts, new_rs_target, old_rs_targets, template_hash, Counts, HASH_LABEL,
};

pub use crate::replicaset::Error;

/// The annotation holding a ReplicaSet's (and its Deployment's) revision number.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a reused ReplicaSet had, comma separated.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// Runs the Deployment controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "deployment-controller");
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ReplicaSet>::all(client), watcher::Config::default());
    run_controller("deployment", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> Counts {
    Counts {
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let spec = d.spec.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut all = claim_replicasets(&rs_api, &d).await?;
    all.sort_by_key(|rs| {
        (
            revision_of(rs),
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            rs.name_any(),
        )
    });

    let desired = spec.replicas.unwrap_or(1);
    let paused = spec.paused.unwrap_or(false);
    let max_revision = all.iter().map(revision_of).max().unwrap_or(0);
    let new_idx = all.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &spec.template))
    });
    let mut created = false;

    let new_rs = match new_idx {
        Some(i) => {
            let rs = all.remove(i);
            // A reused (rolled back to) ReplicaSet becomes the newest revision.
            if revision_of(&rs) < max_revision && !paused {
                Some(bump_revision(&rs_api, &rs, max_revision + 1).await?)
            } else {
                Some(rs)
            }
        }
        None if paused => None,
        None => {
            created = true;
            Some(create_new_rs(&rs_api, &ctx, &d, max_revision + 1).await?)
        }
    };
    let olds = all;

    if let (Some(new), false) = (&new_rs, paused) {
        let strategy = spec.strategy.clone().unwrap_or_default();
        let new_counts = counts(new);
        let old_counts: Vec<Counts> = olds.iter().map(counts).collect();
        if strategy.type_.as_deref() == Some("Recreate") {
            if old_counts.iter().any(|c| c.replicas > 0) {
                for rs in &olds {
                    scale(&rs_api, &ctx, &d, rs, 0).await?;
                }
            } else if olds
                .iter()
                .all(|rs| rs.status.as_ref().is_none_or(|s| s.replicas == 0))
            {
                scale(&rs_api, &ctx, &d, new, desired).await?;
            }
        } else {
            let ru = strategy.rolling_update.unwrap_or_default();
            let (surge, unavailable) =
                fenceposts(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), desired)
                    .map_err(Error::Selector)?;
            let target = new_rs_target(desired, surge, new_counts, &old_counts);
            if target != new_counts.replicas {
                scale(&rs_api, &ctx, &d, new, target).await?;
            } else {
                let targets = old_rs_targets(desired, unavailable, new_counts, &old_counts);
                for (rs, t) in olds.iter().zip(targets) {
                    scale(&rs_api, &ctx, &d, rs, t).await?;
                }
            }
        }
        // The Deployment carries its current revision, as kubectl rollout history expects.
        let rev = new.annotations().get(REVISION).cloned().unwrap_or_default();
        if d.annotations().get(REVISION) != Some(&rev) {
            let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
            Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
    }

    cleanup_history(&rs_api, &olds, spec.revision_history_limit.unwrap_or(10)).await?;
    status::update(&ctx.client, &d, new_rs.as_ref(), &olds, created).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The ReplicaSets this Deployment controls, adopting matching orphans.
async fn claim_replicasets(
    api: &Api<ReplicaSet>,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let sel = selector_of(&spec.selector)?;
    let owner = owner_ref(d);
    let mut out = Vec::new();
    for rs in api
        .list(&ListParams::default().labels_from(&sel))
        .await?
        .items
    {
        match controller_uid(&rs.metadata) {
            Some(uid) if uid == owner.uid => out.push(rs),
            Some(_) => {}
            None if rs.metadata.deletion_timestamp.is_none() => {
                let mut refs = rs.owner_references().to_vec();
                refs.push(owner.clone());
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                out.push(
                    api.patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?,
                );
            }
            None => {}
        }
    }
    Ok(out)
}

async fn create_new_rs(
    api: &Api<ReplicaSet>,
    ctx: &Ctx,
    d: &Deployment,
    revision: i64,
) -> Result<ReplicaSet, Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    // The Deployment's annotations (change-cause among them) travel to the ReplicaSet.
    let mut annotations: std::collections::BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| {
            *k != "kubectl.kubernetes.io/last-applied-configuration"
                && *k != REVISION
                && *k != REVISION_HISTORY
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    let name = format!("{}-{hash}", d.name_any());
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()), "annotations": annotations, "ownerReferences": [owner_ref(d)]},
        "spec": {"replicas": 0, "minReadySeconds": spec.min_ready_seconds, "selector": selector, "template": template},
    }))
    .map_err(|e| Error::Selector(e.to_string()))?;
    match api.create(&PostParams::default(), &rs).await {
        Ok(rs) => {
            ctx.recorder
                .publish(
                    &object_ref(d),
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &format!("Created new replica set \"{name}\""),
                )
                .await;
            Ok(rs)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // A ReplicaSet of that name with another template: a hash collision. Count it, so
            // the next reconcile hashes differently.
            let count = collisions.unwrap_or(0) + 1;
            let dapi: Api<Deployment> = Api::namespaced(
                api.clone().into_client(),
                &d.namespace().unwrap_or_default(),
            );
            dapi.patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"collisionCount": count}})),
            )
            .await?;
            Err(Error::Kube(kube::Error::Api(e)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn bump_revision(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    revision: i64,
) -> Result<ReplicaSet, Error> {
    let old = revision_of(rs);
    let mut history: Vec<String> = rs
        .annotations()
        .get(REVISION_HISTORY)
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    history.push(old.to_string());
    let patch = json!({"metadata": {"annotations": {REVISION: revision.to_string(), REVISION_HISTORY: history.join(",")}}});
    Ok(api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?)
}

async fn scale(
    api: &Api<ReplicaSet>,
    ctx: &Ctx,
    d: &Deployment,
    rs: &ReplicaSet,
    to: i32,
) -> Result<(), Error> {
    let from = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if from == to {
        return Ok(());
    }
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": to}})),
    )
    .await?;
    let dir = if to > from { "up" } else { "down" };
    let msg = format!(
        "Scaled {dir} replica set {} from {from} to {to}",
        rs.name_any()
    );
    ctx.recorder
        .publish(&object_ref(d), EventType::Normal, "ScalingReplicaSet", &msg)
        .await;
    Ok(())
}

/// Deletes the oldest fully scaled-down ReplicaSets beyond `limit`.
async fn cleanup_history(
    api: &Api<ReplicaSet>,
    olds: &[ReplicaSet],
    limit: i32,
) -> Result<(), Error> {
    let idle: Vec<&ReplicaSet> = olds
        .iter()
        .filter(|rs| {
            counts(rs).replicas == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    // `olds` is sorted by revision, oldest first.
    for rs in idle.into_iter().take(excess) {
        match api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
