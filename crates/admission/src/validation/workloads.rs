//! apps/v1 validation: Deployment, ReplicaSet, DaemonSet (pkg/apis/apps/validation).

use kinet_types::FieldError;
use serde_json::{json, Value};

use super::meta::{invalid_each, label_selector, selector_is_empty, selector_matches};
use super::names::{self, IMMUTABLE_MSG, NEGATIVE_MSG};
use super::pod::pod_spec;
use crate::json::str_of;

fn nonnegative(spec: &Value, key: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(format!("spec.{key}"), n, NEGATIVE_MSG));
    }
}

/// Selector present, valid, non-empty, and matching the template's labels; then the template.
fn selector_and_template(spec: &Value, what: &str, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let template = spec.get("template").unwrap_or(&empty);
    let labels = template
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .cloned()
        .unwrap_or(Value::Null);
    match spec.get("selector").filter(|s| s.is_object()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            label_selector(sel, "spec.selector", errs);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    sel.clone(),
                    &format!("empty selector is invalid for {what}"),
                ));
            } else if !selector_matches(sel, &labels) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels.clone(),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    let restart: &[&str] = if what == "job" {
        &["OnFailure", "Never"]
    } else {
        &["Always"]
    };
    pod_template(template, "spec.template", restart, errs);
    if !matches!(what, "daemonset" | "job")
        && template
            .get("spec")
            .and_then(|s| s.get("activeDeadlineSeconds"))
            .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// A pod template's labels and spec, with the restart policies its owner allows.
fn pod_template(template: &Value, path: &str, restart: &[&str], errs: &mut Vec<FieldError>) {
    let empty = json!({});
    if let Some(l) = template.get("metadata").and_then(|m| m.get("labels")) {
        super::meta::validate_labels(l, &format!("{path}.metadata.labels"), errs);
    }
    let spec = template.get("spec").unwrap_or(&empty);
    pod_spec(spec, &format!("{path}.spec"), errs);
    let policy = str_of(spec, "restartPolicy");
    if !(restart.contains(&policy) || (policy.is_empty() && restart == ["Always"])) {
        errs.push(FieldError::not_supported(
            format!("{path}.spec.restartPolicy"),
            policy,
            restart,
        ));
    }
}

/// ValidatePositiveIntOrPercent and the 100% cap.
fn int_or_percent(v: Option<&Value>, path: &str, cap_100: bool, errs: &mut Vec<FieldError>) -> i64 {
    match v {
        Some(Value::String(s)) => {
            let msgs = names::is_percent(s);
            let ok = msgs.is_empty();
            invalid_each(errs, path, s.as_str(), msgs);
            let n = s.trim_end_matches('%').parse::<i64>().unwrap_or(0);
            if ok && cap_100 && n > 100 {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            n
        }
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(FieldError::invalid(path, n, NEGATIVE_MSG));
            }
            n
        }
        _ => 0,
    }
}

fn rolling_update(ru: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let unavailable = int_or_percent(
        ru.get("maxUnavailable"),
        &format!("{path}.maxUnavailable"),
        true,
        errs,
    );
    let surge = int_or_percent(ru.get("maxSurge"), &format!("{path}.maxSurge"), false, errs);
    if unavailable == 0 && surge == 0 {
        errs.push(FieldError::invalid(
            format!("{path}.maxUnavailable"),
            ru.get("maxUnavailable").cloned().unwrap_or(json!(0)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

pub fn deployment(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    nonnegative(spec, "replicas", errs);
    selector_and_template(spec, "deployment", errs);
    let strategy = spec.get("strategy").unwrap_or(&empty);
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match str_of(strategy, "type") {
        "Recreate" if ru.is_some() => errs.push(FieldError::forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        )),
        "Recreate" => {}
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => rolling_update(ru, "spec.strategy.rollingUpdate", errs),
        },
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    nonnegative(spec, "minReadySeconds", errs);
    nonnegative(spec, "revisionHistoryLimit", errs);
    if let Some(p) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        nonnegative(spec, "progressDeadlineSeconds", errs);
        if p <= spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
        {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

pub fn replica_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    nonnegative(spec, "replicas", errs);
    nonnegative(spec, "minReadySeconds", errs);
    // kube-apiserver says "deployment" here too.
    selector_and_template(spec, "deployment", errs);
}

pub fn daemon_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    selector_and_template(spec, "daemonset", errs);
    nonnegative(spec, "minReadySeconds", errs);
    nonnegative(spec, "revisionHistoryLimit", errs);
    let strategy = spec.get("updateStrategy").unwrap_or(&empty);
    match str_of(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| !r.is_null()) {
            None => errs.push(FieldError::required(
                "spec.updateStrategy.rollingUpdate",
                "",
            )),
            Some(ru) => rolling_update(ru, "spec.updateStrategy.rollingUpdate", errs),
        },
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

/// apps/v1 selectors are immutable.
pub fn selector_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let sel = |v: &Value| {
        v.get("spec")
            .and_then(|s| s.get("selector"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (n, o) = (sel(new), sel(old));
    if n != o {
        errs.push(FieldError::invalid("spec.selector", n, IMMUTABLE_MSG));
    }
}

pub fn stateful_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    nonnegative(spec, "replicas", errs);
    nonnegative(spec, "minReadySeconds", errs);
    nonnegative(spec, "revisionHistoryLimit", errs);
    // Each claim template is a volume the containers may mount, as upstream validates it.
    let mut with_claims = spec.clone();
    for claim in spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = claim["metadata"]["name"].clone();
        let volume = json!({"name": name, "persistentVolumeClaim": {"claimName": name}});
        match with_claims["template"]["spec"]["volumes"].as_array_mut() {
            Some(v) => v.push(volume),
            None => with_claims["template"]["spec"]["volumes"] = json!([volume]),
        }
    }
    selector_and_template(&with_claims, "statefulset", errs);
    let policy = str_of(spec, "podManagementPolicy");
    if !matches!(policy, "OrderedReady" | "Parallel") {
        errs.push(FieldError::not_supported(
            "spec.podManagementPolicy",
            policy,
            &["OrderedReady", "Parallel"],
        ));
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&empty);
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match str_of(strategy, "type") {
        "OnDelete" if ru.is_some() => errs.push(FieldError::invalid(
            "spec.updateStrategy.rollingUpdate",
            ru.cloned().unwrap_or_default(),
            "only allowed for updateStrategy 'RollingUpdate'",
        )),
        "OnDelete" | "RollingUpdate" => {
            if let Some(p) = ru
                .and_then(|r| r.get("partition"))
                .and_then(Value::as_i64)
                .filter(|p| *p < 0)
            {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate.partition",
                    p,
                    NEGATIVE_MSG,
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

/// StatefulSet updates may change only replicas, ordinals, template, updateStrategy,
/// persistentVolumeClaimRetentionPolicy and minReadySeconds.
pub fn stateful_set_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or_default();
        if let Some(m) = spec.as_object_mut() {
            for k in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                m.remove(k);
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// The numeric limits of a JobSpec at `path`.
fn job_counts(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(n) = spec.get(key).and_then(Value::as_i64).filter(|n| *n < 0) {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                n,
                NEGATIVE_MSG,
            ));
        }
    }
    if let Some(n) = spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .filter(|n| *n <= 0)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            n,
            "must be greater than 0",
        ));
    }
}

pub fn job(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    job_counts(spec, "spec", errs);
    selector_and_template(spec, "job", errs);
}

/// A Job's selector and pod template are immutable.
pub fn job_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    selector_update(new, old, errs);
    let template = |v: &Value| v.get("spec").and_then(|s| s.get("template")).cloned();
    if template(new) != template(old) {
        errs.push(FieldError::invalid(
            "spec.template",
            template(new).unwrap_or_default(),
            IMMUTABLE_MSG,
        ));
    }
}

pub fn cron_job(obj: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    match spec.get("schedule").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required("spec.schedule", "")),
        Some(s) => {
            if let Err(why) = kinet_types::schedule::Schedule::parse(s) {
                errs.push(FieldError::invalid("spec.schedule", s, &why));
            }
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        if !matches!(tz, "UTC" | "Etc/UTC") {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                tz,
                "kinet evaluates schedules in UTC only",
            ));
        }
    }
    let policy = str_of(spec, "concurrencyPolicy");
    if !matches!(policy, "Allow" | "Forbid" | "Replace") {
        errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            policy,
            &["Allow", "Forbid", "Replace"],
        ));
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        nonnegative(spec, key, errs);
    }
    let job = spec
        .get("jobTemplate")
        .and_then(|t| t.get("spec"))
        .unwrap_or(&empty);
    job_counts(job, "spec.jobTemplate.spec", errs);
    pod_template(
        job.get("template").unwrap_or(&empty),
        "spec.jobTemplate.spec.template",
        &["OnFailure", "Never"],
        errs,
    );
}
