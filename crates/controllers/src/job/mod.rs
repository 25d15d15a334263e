//! Job → Pods run to completion: `parallelism` at a time until `completions` succeeded, with
//! failures counted against `backoffLimit` and the whole run bounded by
//! `activeDeadlineSeconds`; then the Complete or Failed condition, and deletion
//! `ttlSecondsAfterFinished` later (upstream's TTL-after-finished controller). The decisions are
//! in [`plan`].

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};

use crate::events::{object_ref, EventType};
use crate::owners::owner_ref;
use crate::replicaset::{
    claim_pods_where, create_pods, delete_pods, pod_ready, pods_to_delete, Error, RETRY,
};
use crate::runtime::{patch_status_if_changed, run_controller, Ctx};
use plan::{Counts, Verdict};

/// Runs the Job controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "job-controller");
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default());
    run_controller("job", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the Job has a true Complete or Failed condition, and when it finished.
pub(crate) fn finished_at(status: Option<&JobStatus>) -> Option<(bool, Option<Timestamp>)> {
    let c = status?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    Some((
        c.type_ == "Complete",
        c.last_transition_time.as_ref().map(|t| t.0),
    ))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    if let Some((_, at)) = finished_at(job.status.as_ref()) {
        return expire(&ctx.client, &job, at.unwrap_or(now), now).await;
    }
    let ns = job.namespace().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = owner_ref(job.as_ref());
    let selector = spec.selector.clone().unwrap_or_default();
    let pods = claim_pods_where(&pods_api, &selector, &owner, |p| {
        p.metadata.deletion_timestamp.is_none()
    })
    .await?;
    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .collect();
    let on_failure_restarts: i64 = active
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    let counts = Counts {
        active: active.len() as i64,
        succeeded: pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64,
        failed: pods.iter().filter(|p| phase(p) == "Failed").count() as i64 + on_failure_restarts,
    };
    let plan_spec = plan::Spec {
        parallelism: i64::from(spec.parallelism.unwrap_or(1)),
        completions: spec.completions.map(i64::from),
        backoff_limit: i64::from(spec.backoff_limit.unwrap_or(6)),
        active_deadline_seconds: spec.active_deadline_seconds,
        suspend: spec.suspend.unwrap_or(false),
    };
    let old = job.status.clone().unwrap_or_default();
    let start = old.start_time.clone().map(|t| t.0).unwrap_or(now);
    let elapsed = now.as_second() - start.as_second();
    let verdict = plan::verdict(&plan_spec, &counts, elapsed);
    let objref = object_ref(job.as_ref());

    let mut status = JobStatus {
        active: Some(counts.active as i32),
        succeeded: Some(counts.succeeded as i32),
        failed: Some(pods.iter().filter(|p| phase(p) == "Failed").count() as i32),
        ready: Some(active.iter().filter(|p| pod_ready(p)).count() as i32),
        terminating: Some(0),
        start_time: Some(Time(start)),
        conditions: old.conditions.clone(),
        ..old.clone()
    };
    let mut requeue = Action::requeue(Duration::from_secs(300));
    match verdict {
        Verdict::Run(n) if n > 0 => {
            let template = spec.template.clone();
            create_pods(
                &pods_api,
                &ctx.recorder,
                job.as_ref(),
                &template,
                &owner,
                n as usize,
            )
            .await?;
        }
        Verdict::Run(n) if n < 0 => {
            let owned: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
            let doomed = pods_to_delete(&owned, (-n) as usize);
            delete_pods(&pods_api, &ctx.recorder, job.as_ref(), doomed).await?;
        }
        Verdict::Run(_) => {}
        Verdict::Complete => {
            status.completion_time = Some(Time(now));
            status.active = Some(0);
            push_condition(
                &mut status,
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
            push_condition(
                &mut status,
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
            ctx.recorder
                .publish(&objref, EventType::Normal, "Completed", "Job completed")
                .await;
        }
        Verdict::Failed(reason, message) => {
            delete_pods(&pods_api, &ctx.recorder, job.as_ref(), active.clone()).await?;
            status.active = Some(0);
            push_condition(&mut status, "FailureTarget", reason, message, now);
            push_condition(&mut status, "Failed", reason, message, now);
            ctx.recorder
                .publish(&objref, EventType::Warning, reason, message)
                .await;
        }
    }
    if let (Verdict::Run(_), Some(deadline)) = (&verdict, spec.active_deadline_seconds) {
        requeue = Action::requeue(Duration::from_secs((deadline - elapsed).max(1) as u64));
    }
    patch_status_if_changed(&ctx.client, job.as_ref(), job.status.as_ref(), &status).await?;
    Ok(requeue)
}

fn push_condition(status: &mut JobStatus, kind: &str, reason: &str, message: &str, now: Timestamp) {
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(JobCondition {
            type_: kind.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
}

/// Deletes a finished Job (and, in the background, its pods) once `ttlSecondsAfterFinished`
/// has passed since it finished; until then looks again when it will have.
async fn expire(
    client: &Client,
    job: &Job,
    finished: Timestamp,
    now: Timestamp,
) -> Result<Action, Error> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    let left = finished.as_second() + i64::from(ttl) - now.as_second();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left as u64)));
    }
    let api: Api<Job> = Api::namespaced(client.clone(), &job.namespace().unwrap_or_default());
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
