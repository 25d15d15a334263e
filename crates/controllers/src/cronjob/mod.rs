//! CronJob → Jobs on a schedule: at each due time a Job named `<cronjob>-<minutes>` is made
//! from `jobTemplate` (concurrencyPolicy decides about running ones), finished Jobs beyond the
//! history limits are deleted, and `status.active`, `lastScheduleTime` and `lastSuccessfulTime`
//! are kept. Schedules are evaluated in UTC. The decisions are in [`plan`].

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kinet_types::schedule::Schedule;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

use crate::events::{object_ref, EventType};
use crate::job::finished_at;
use crate::owners::{owner_ref, ByOwner};
use crate::replicaset::{Error, RETRY};
use crate::runtime::{patch_status_if_changed, run_controller, Ctx};
use plan::Decision;

/// The annotation recording the scheduled time a Job was made for.
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Runs the CronJob controller.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let ctx = Ctx::new(&client, "cronjob-controller");
    // One watch of Jobs both keeps the index and wakes their CronJob, the index first, so a
    // reconcile sees the change that woke it.
    let jobs = ByOwner::<Job>::default();
    let index = jobs.clone();
    let job_events = watcher(Api::<Job>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map_ok(move |event| {
            index.apply(&event);
            event
        })
        .touched_objects();
    let controller = Controller::new(Api::<CronJob>::all(client), watcher::Config::default())
        .owns_stream(job_events);
    let reconcile = move |cj, ctx| reconcile(cj, ctx, jobs.clone());
    run_controller("cronjob", controller, reconcile, ctx, RETRY).await;
    Ok(())
}

fn chrono_of(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}

fn jiff_of(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>, jobs: ByOwner<Job>) -> Result<Action, Error> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let Ok(schedule) = Schedule::parse(&spec.schedule) else {
        // Validation refuses these; an object stored before that cannot run.
        return Ok(Action::await_change());
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = owner_ref(cj.as_ref());
    let jobs = jobs.owned_by(&owner.uid);
    let objref = object_ref(cj.as_ref());

    let mut active: Vec<&Job> = Vec::new();
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for j in jobs.iter().map(Arc::as_ref) {
        match finished_at(j.status.as_ref()) {
            None => active.push(j),
            Some((ok, at)) => {
                let t = at.map(|t| t.as_second()).unwrap_or(0);
                if ok { &mut succeeded } else { &mut failed }.push((j.name_any(), t));
            }
        }
    }
    let last_success = succeeded.iter().map(|(_, t)| *t).max();
    let limit = |v: Option<i32>, d: i32| v.unwrap_or(d).max(0) as usize;
    let doomed = [
        plan::beyond_history(succeeded, limit(spec.successful_jobs_history_limit, 3)),
        plan::beyond_history(failed, limit(spec.failed_jobs_history_limit, 1)),
    ]
    .concat();
    for name in doomed {
        delete_job(&jobs_api, &name).await?;
        ctx.recorder
            .publish(
                &objref,
                EventType::Normal,
                "SuccessfulDelete",
                &format!("Deleted job {name}"),
            )
            .await;
    }

    let now = Utc::now();
    let old = cj.status.clone().unwrap_or_default();
    let last = old
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| chrono_of(t.0))
        .unwrap_or(now);
    let concurrency = spec.concurrency_policy.clone().unwrap_or_default();
    let decision = plan::decide(
        &plan::Spec {
            schedule: &schedule,
            suspend: spec.suspend.unwrap_or(false),
            concurrency: &concurrency,
            starting_deadline_seconds: spec.starting_deadline_seconds,
        },
        last,
        !active.is_empty(),
        now,
    );
    let mut status = CronJobStatus {
        active: None,
        last_schedule_time: old.last_schedule_time.clone(),
        last_successful_time: last_success
            .and_then(|t| Timestamp::from_second(t).ok())
            .map(Time)
            .or(old.last_successful_time.clone()),
    };
    let mut refs: Vec<_> = active.iter().map(|j| object_ref(*j)).collect();
    match decision {
        Decision::Start { scheduled, replace } => {
            if replace {
                for j in active.drain(..) {
                    delete_job(&jobs_api, &j.name_any()).await?;
                }
                refs.clear();
            }
            let job = job_for(&cj, &owner, scheduled);
            match jobs_api.create(&PostParams::default(), &job).await {
                Ok(made) => {
                    ctx.recorder
                        .publish(
                            &objref,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created job {}", made.name_any()),
                        )
                        .await;
                    refs.push(object_ref(&made));
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    ctx.recorder
                        .publish(
                            &objref,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating job: {}", crate::events::error_text(&e)),
                        )
                        .await;
                    return Err(e.into());
                }
            }
            status.last_schedule_time = Some(jiff_of(scheduled));
        }
        Decision::Skip(_) => {
            ctx.recorder
                .publish(
                    &objref,
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                )
                .await;
        }
        Decision::Missed(scheduled) => {
            ctx.recorder
                .publish(
                    &objref,
                    EventType::Warning,
                    "MissSchedule",
                    &format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled.to_rfc3339()
                    ),
                )
                .await;
            status.last_schedule_time = Some(jiff_of(scheduled));
        }
        Decision::Wait(_) => {}
    }
    status.active = (!refs.is_empty()).then_some(refs);
    patch_status_if_changed(&ctx.client, cj.as_ref(), cj.status.as_ref(), &status).await?;
    // Look again just after the next scheduled time.
    let next = schedule
        .next_after(Utc::now())
        .map(|t| (t - Utc::now()).num_milliseconds().max(0) as u64 + 200)
        .unwrap_or(3_600_000);
    Ok(Action::requeue(Duration::from_millis(next)))
}

/// The Job for one scheduled run, from the template, controlled by the CronJob.
fn job_for(
    cj: &CronJob,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    scheduled: DateTime<Utc>,
) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_AT.into(), scheduled.to_rfc3339());
    Job {
        metadata: ObjectMeta {
            name: Some(plan::job_name(&cj.name_any(), scheduled)),
            labels: tm.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn delete_job(api: &Api<Job>, name: &str) -> Result<(), Error> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
