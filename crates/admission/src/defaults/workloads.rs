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
