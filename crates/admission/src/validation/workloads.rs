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

/// Selector present, valid, non-empty, and matching the template's labels.
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
    if let Some(l) = template.get("metadata").and_then(|m| m.get("labels")) {
        super::meta::validate_labels(l, "spec.template.metadata.labels", errs);
    }
    pod_spec(
        template.get("spec").unwrap_or(&empty),
        "spec.template.spec",
        errs,
    );
    let restart = str_of(template.get("spec").unwrap_or(&empty), "restartPolicy");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            restart,
            &["Always"],
        ));
    }
    if what != "daemonset"
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
