//! Rows for StatefulSets, Jobs and CronJobs (printers.go `printStatefulSet`, `printJob`,
//! `printCronJob`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::core::template_containers;
use crate::duration::{human_age, human_duration, parse_time, since};
use crate::util::{
    arr_at, at, container_cells, created, format_label_selector, int_at, name, str_at,
};

pub(crate) fn stateful_set(sts: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(sts);
    let desired = at(sts, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    vec![
        json!(name(sts)),
        json!(format!(
            "{}/{desired}",
            int_at(sts, &["status", "readyReplicas"])
        )),
        json!(human_age(created(sts), now)),
        json!(names),
        json!(images),
    ]
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    arr_at(obj, &["status", "conditions"])
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The STATUS cell, in upstream's order of precedence.
fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if at(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

pub(crate) fn job(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(job);
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(job, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let time = |k: &str| parse_time(str_at(job, &["status", k]));
    let duration = match (time("startTime"), time("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => since(start, now),
        (Some(start), Some(end)) => human_duration((end - start).num_seconds()),
    };
    vec![
        json!(name(job)),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        json!(human_age(created(job), now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}

pub(crate) fn cron_job(cj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let job = at(cj, &["spec", "jobTemplate"]).unwrap_or(&Value::Null);
    let (names, images) = container_cells(at(job, &["spec", "template", "spec"]));
    let suspend = match at(cj, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = match parse_time(str_at(cj, &["status", "lastScheduleTime"])) {
        Some(t) => since(t, now),
        None => "<none>".to_string(),
    };
    let zone = match str_at(cj, &["spec", "timeZone"]) {
        "" => "<none>",
        z => z,
    };
    vec![
        json!(name(cj)),
        json!(str_at(cj, &["spec", "schedule"])),
        json!(zone),
        json!(suspend),
        json!(arr_at(cj, &["status", "active"]).len()),
        json!(last),
        json!(human_age(created(cj), now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}
