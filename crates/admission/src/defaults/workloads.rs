//! apps/v1 defaults (pkg/apis/apps/v1/defaults.go). Templates get the PodSpec defaults only.

use serde_json::{json, Value};

use super::pod;
use crate::json::{default_str, default_to, ensure, Obj};

pub fn deployment(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    default_to(spec, "replicas", json!(1));
    let strategy = ensure(spec, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = ensure(strategy, "rollingUpdate");
        default_to(ru, "maxUnavailable", json!("25%"));
        default_to(ru, "maxSurge", json!("25%"));
    }
    default_to(spec, "revisionHistoryLimit", json!(10));
    default_to(spec, "progressDeadlineSeconds", json!(600));
    pod::template(spec);
}

pub fn replica_set(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    default_to(spec, "replicas", json!(1));
    pod::template(spec);
}

pub fn daemon_set(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    let strategy = ensure(spec, "updateStrategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = ensure(strategy, "rollingUpdate");
        default_to(ru, "maxUnavailable", json!(1));
        default_to(ru, "maxSurge", json!(0));
    }
    default_to(spec, "revisionHistoryLimit", json!(10));
    pod::template(spec);
}

pub fn stateful_set(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    default_to(spec, "replicas", json!(1));
    default_str(spec, "podManagementPolicy", "OrderedReady");
    let strategy = ensure(spec, "updateStrategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = ensure(strategy, "rollingUpdate");
        default_to(ru, "partition", json!(0));
    }
    default_to(spec, "revisionHistoryLimit", json!(10));
    let retention = ensure(spec, "persistentVolumeClaimRetentionPolicy");
    default_str(retention, "whenDeleted", "Retain");
    default_str(retention, "whenScaled", "Retain");
    pod::template(spec);
}

/// SetDefaults_Job: one pod run to completion unless told otherwise, six retries.
pub fn job(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    job_spec(spec);
    // A Job's own labels default to its template's.
    let labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .cloned();
    let meta = ensure(obj, "metadata");
    if meta
        .get("labels")
        .is_none_or(|l| l.as_object().is_none_or(|m| m.is_empty()))
    {
        if let Some(l) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
            meta.insert("labels".into(), l);
        }
    }
}

fn job_spec(spec: &mut Obj) {
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
    }
    default_to(spec, "parallelism", json!(1));
    default_to(spec, "backoffLimit", json!(6));
    default_str(spec, "completionMode", "NonIndexed");
    default_to(spec, "suspend", json!(false));
    default_str(spec, "podReplacementPolicy", "TerminatingOrFailed");
    default_to(spec, "manualSelector", json!(false));
    pod::template(spec);
}

/// SetDefaults_CronJob; the job template gets the PodSpec defaults only, as upstream.
pub fn cron_job(obj: &mut Obj) {
    let spec = ensure(obj, "spec");
    default_str(spec, "concurrencyPolicy", "Allow");
    default_to(spec, "suspend", json!(false));
    default_to(spec, "successfulJobsHistoryLimit", json!(3));
    default_to(spec, "failedJobsHistoryLimit", json!(1));
    let job = ensure(ensure(spec, "jobTemplate"), "spec");
    pod::template(job);
}
