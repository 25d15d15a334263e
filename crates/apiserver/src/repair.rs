//! The start-up check of stored objects. Objects written before every write was canonical (or
//! put into the database by other means) are decoded with their kind's schema: one stored in
//! another form is rewritten in canonical form, and one that does not decode at all is moved
//! out of the store into `data_dir/quarantine/`, so list and watch never hand it to a typed
//! client. Both are logged and reported as Events on the object; `kinet status` lists the
//! quarantined ones.

use std::path::Path;

use crate::ServeError;

use kinet_store::{Mutation, Store};
use kinet_types::registry::{Resource, RESOURCES};
use kinet_types::ApiError;
use serde_json::Value;

/// The folder of the data directory that keeps objects taken out of the store.
pub const QUARANTINE: &str = "quarantine";

/// What to do with one stored object.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Already what a write stores today.
    Canonical,
    /// Decodes, but is stored in another form: store this instead.
    Repair(Value),
    /// Does not decode; why.
    Quarantine(String),
}

/// The verdict on one stored object.
pub fn check(resource: &Resource, stored: &Value) -> Verdict {
    match kinet_admission::canonicalize(resource, stored.clone()) {
        Ok(c) if c.object == *stored => Verdict::Canonical,
        Ok(c) => Verdict::Repair(c.object),
        Err(e) => Verdict::Quarantine(e.message),
    }
}

/// One object the check changed.
#[derive(Debug, Clone)]
pub struct Finding {
    pub resource: &'static Resource,
    /// The object as it was stored.
    pub object: Value,
    /// `Repaired` or `Quarantined`.
    pub reason: &'static str,
    pub message: String,
}

/// Checks every stored object, rewriting or quarantining it as [`check`] says.
pub async fn run(store: &Store, data_dir: &Path) -> Result<Vec<Finding>, ServeError> {
    let mut findings = Vec::new();
    for resource in RESOURCES {
        let prefix = format!("{}/", resource.key_prefix());
        for (key, stored) in store.entries(&prefix) {
            let (mutation, reason, message) = match check(resource, &stored.value) {
                Verdict::Canonical => continue,
                Verdict::Repair(fixed) => (
                    Mutation::Put(fixed),
                    "Repaired",
                    "was stored with fields or nulls its schema does not allow; rewritten in the form the API server stores".to_string(),
                ),
                Verdict::Quarantine(error) => {
                    let dir = data_dir.join(QUARANTINE);
                    std::fs::create_dir_all(&dir).map_err(ServeError::io("creating", &dir))?;
                    let file = dir.join(format!("{}.json", key.replace('/', "_")));
                    std::fs::write(&file, &stored.json)
                        .map_err(ServeError::io("writing", &file))?;
                    (
                        Mutation::Delete,
                        "Quarantined",
                        format!(
                            "does not decode ({error}); removed from the store, kept in {}",
                            file.display()
                        ),
                    )
                }
            };
            tracing::warn!(%key, reason, %message, "start-up check of stored objects");
            let rv = stored.rv;
            store
                .write(&key, move |now| match now {
                    Some(now)
                        if now["metadata"]["resourceVersion"].as_str() == Some(&rv.to_string()) =>
                    {
                        Ok(mutation)
                    }
                    _ => Err(ApiError::conflict(resource, "changed during the check")),
                })
                .await
                .map_err(ServeError::api(format!("rewriting {key}")))?;
            findings.push(Finding {
                resource,
                object: stored.value.clone(),
                reason,
                message,
            });
        }
    }
    Ok(findings)
}

/// The start-up check in one log line.
pub fn summary(findings: &[Finding]) -> String {
    let count = |reason| findings.iter().filter(|f| f.reason == reason).count();
    match (count("Repaired"), count("Quarantined")) {
        (0, 0) => "stored objects checked: all in their schema's form".to_string(),
        (r, q) => format!("stored objects checked: {r} repaired, {q} quarantined (see the events)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;
    use serde_json::json;

    #[test]
    fn verdicts() {
        let svc = lookup("", "v1", "services").unwrap();
        let good = kinet_admission::canonicalize(
            svc,
            json!({"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {"selector": {"a": "b"}}}),
        )
        .unwrap()
        .object;
        assert_eq!(check(svc, &good), Verdict::Canonical);
        let mut nulls = good.clone();
        nulls["spec"]["selector"]["a"] = Value::Null;
        nulls["bogus"] = json!([[[]]]);
        let Verdict::Repair(fixed) = check(svc, &nulls) else {
            panic!("repairable");
        };
        assert_eq!(fixed["spec"]["selector"], json!({"a": ""}));
        assert!(fixed.get("bogus").is_none());
        assert_eq!(fixed["metadata"]["resourceVersion"], "3");
        let mut broken = good;
        broken["spec"]["ports"] = json!("eighty");
        let Verdict::Quarantine(why) = check(svc, &broken) else {
            panic!("not repairable");
        };
        assert!(why.contains("cannot unmarshal string"), "{why}");
    }

    #[tokio::test]
    async fn run_rewrites_the_repairable_and_quarantines_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.db")).unwrap();
        let objects = [
            (
                "core/services/default/nulls",
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "nulls", "namespace": "default"}, "spec": {"selector": {"a": null}}}),
            ),
            (
                "core/services/default/broken",
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "broken", "namespace": "default"}, "spec": {"ports": "eighty"}}),
            ),
        ];
        for (key, obj) in objects {
            store
                .write(key, move |_| Ok(Mutation::Put(obj)))
                .await
                .unwrap();
        }
        let findings = run(&store, dir.path()).await.unwrap();
        let reasons: Vec<&str> = findings.iter().map(|f| f.reason).collect();
        assert_eq!(reasons, ["Quarantined", "Repaired"]);
        let fixed = store.get("core/services/default/nulls").unwrap();
        assert_eq!(fixed.value["spec"]["selector"], json!({"a": ""}));
        assert!(store.get("core/services/default/broken").is_none());
        let kept = dir
            .path()
            .join("quarantine/core_services_default_broken.json");
        let kept: Value = serde_json::from_slice(&std::fs::read(kept).unwrap()).unwrap();
        assert_eq!(kept["spec"]["ports"], "eighty");
        assert!(summary(&findings).contains("1 repaired, 1 quarantined"));
        // A second start finds nothing left to do.
        assert!(run(&store, dir.path()).await.unwrap().is_empty());
    }
}
