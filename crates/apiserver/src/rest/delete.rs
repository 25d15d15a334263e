//! DELETE and DELETECOLLECTION with kube-apiserver's semantics: preconditions, graceful pod
//! deletion, finalizers (including the ones propagationPolicy adds for the garbage collector),
//! and namespaces that terminate before they go.

use kinet_store::Mutation;
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::services::Holdings;
use super::{collection_prefix, meta, read::Filter, Api, Call};
use crate::http::{bytes_reply, json_reply, Reply};

/// `metav1.DeleteOptions`, from the body and the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    grace: Option<i64>,
    policy: Option<String>,
    uid: Option<String>,
    pub(super) rv: Option<String>,
    pub(super) dry_run: bool,
}

impl DeleteOptions {
    fn parse(body: &[u8], call: &Call) -> Result<DeleteOptions> {
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        DeleteOptions::from_value(&v, call)
    }

    /// From decoded options (`null`: none) and the call's query.
    pub(super) fn from_value(v: &Value, call: &Call) -> Result<DeleteOptions> {
        let q = &call.query;
        let orphan = v["orphanDependents"]
            .as_bool()
            .or_else(|| q.get("orphanDependents").map(|o| o == "true"));
        let policy = v["propagationPolicy"]
            .as_str()
            .or_else(|| q.get("propagationPolicy"))
            .map(str::to_string)
            .or_else(|| orphan.map(|o| if o { "Orphan" } else { "Background" }.to_string()));
        if let Some(p) = &policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    call.resource(),
                    call.name(),
                    &[kinet_types::FieldError::not_supported(
                        "propagationPolicy",
                        p.as_str(),
                        &["Foreground", "Background", "Orphan"],
                    )],
                ));
            }
        }
        Ok(DeleteOptions {
            grace: v["gracePeriodSeconds"]
                .as_i64()
                .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
            policy,
            uid: v["preconditions"]["uid"].as_str().map(str::to_string),
            rv: v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string),
            dry_run: v["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All"))
                || q.all("dryRun").contains(&"All"),
        })
    }
}

/// What deleting one object does now.
enum Plan {
    /// Remove it from storage.
    Remove,
    /// Keep it, marked for deletion (finalizers pending, graceful pod termination, namespaces).
    Mark(Value),
    /// Already marked; nothing changes.
    Pending,
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `resource` is the core v1 `kind`: a custom resource may take a built-in kind's name
/// in its own group.
fn is_core(resource: &Resource, kind: &str) -> bool {
    (resource.group, resource.version, resource.kind) == ("", "v1", kind)
}

fn plan(resource: &Resource, obj: &Value, opts: &DeleteOptions) -> Plan {
    let now = meta::now();
    let marked = obj["metadata"]["deletionTimestamp"].is_string();
    let mut new = obj.clone();
    if is_core(resource, "Namespace") {
        let spec_finalizers = obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if marked && !spec_finalizers && finalizers(obj).is_empty() {
            return Plan::Remove;
        }
        if marked {
            return Plan::Pending;
        }
        let m = meta::metadata_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(now));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"]["phase"] = json!("Terminating");
        return Plan::Mark(new);
    }
    let mut pending = finalizers(obj);
    if std::ptr::eq(resource, crate::crds::crd_resource()) && !marked {
        pending.push(crate::crds::CLEANUP_FINALIZER.to_string());
        crate::crds::mark_terminating(&mut new);
    }
    let extra = match opts.policy.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    if let Some(f) = extra {
        if !pending.iter().any(|p| p == f) {
            pending.push(f.to_string());
        }
    }
    // A pod on a node terminates gracefully: the node agent stops it, then deletes it with grace 0.
    if is_core(resource, "Pod") {
        let bound = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        let grace = opts
            .grace
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if bound && !terminal && grace > 0 {
            if current.is_some_and(|c| c <= grace) {
                return Plan::Pending;
            }
            let deadline = chrono::Utc::now() + chrono::Duration::seconds(grace);
            let m = meta::metadata_mut(&mut new);
            m.insert(
                "deletionTimestamp".into(),
                json!(deadline.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if !pending.is_empty() {
                m.insert("finalizers".into(), json!(pending));
            }
            return Plan::Mark(new);
        }
    }
    if pending.is_empty() {
        return Plan::Remove;
    }
    if marked && pending == finalizers(obj) && obj["metadata"]["deletionGracePeriodSeconds"] == 0 {
        return Plan::Pending;
    }
    let m = meta::metadata_mut(&mut new);
    if !marked {
        m.insert("deletionTimestamp".into(), json!(now));
    }
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    m.insert("finalizers".into(), json!(pending));
    Plan::Mark(new)
}

impl Api {
    /// Deletes (or marks) one object. Returns the object and whether it is gone.
    pub(super) async fn delete_one(
        &self,
        resource: &'static Resource,
        key: String,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Value, bool)> {
        for _ in 0..16 {
            let current = self
                .store
                .get(&key)
                .ok_or_else(|| ApiError::not_found(resource, name))?;
            let uid = meta::meta_str(&current.value, "uid").unwrap_or_default();
            if let Some(want) = opts.uid.as_deref().filter(|u| *u != uid) {
                return Err(ApiError::new(409, "Conflict", format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {want}, UID in object meta: {uid}",
                    resource.qualified_resource()
                )));
            }
            if let Some(want) = opts
                .rv
                .as_deref()
                .filter(|rv| *rv != current.rv.to_string())
            {
                return Err(ApiError::new(409, "Conflict", format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    resource.qualified_resource(), current.rv
                )));
            }
            let plan = plan(resource, &current.value, opts);
            let (mutation, gone) = match plan {
                Plan::Pending => return Ok((current.value.clone(), false)),
                Plan::Remove => (Mutation::Delete, true),
                Plan::Mark(new) => (Mutation::Put(self.to_stored(resource, new)?), false),
            };
            if opts.dry_run {
                return Ok((current.value.clone(), gone));
            }
            let expected = current.rv;
            let conflict_name = name.to_string();
            let result = self
                .store
                .write(&key, move |now| match now {
                    None => Err(ApiError::not_found(resource, &conflict_name)),
                    Some(now) if meta::resource_version(now) != Some(expected) => {
                        Err(ApiError::conflict(resource, &conflict_name))
                    }
                    Some(_) => Ok(mutation),
                })
                .await;
            match result {
                Ok(outcome) => {
                    if gone && is_core(resource, "Service") {
                        self.release(&key, &Holdings::of(&current.value)).await;
                    }
                    let obj = outcome
                        .object
                        .map(|s| s.value.clone())
                        .unwrap_or_else(|| current.value.clone());
                    return Ok((obj, gone));
                }
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// Deletes one object as a client's plain DELETE would (its finalizers honoured).
    pub(crate) async fn delete_object(
        &self,
        resource: &'static Resource,
        key: String,
        name: &str,
    ) -> Result<(Value, bool)> {
        self.delete_one(resource, key, name, &DeleteOptions::default())
            .await
    }

    pub async fn delete(&self, mut call: Call) -> Result<Reply> {
        let body = call.body().await?;
        let opts = DeleteOptions::parse(&body, &call)?;
        let (obj, gone) = self
            .delete_one(call.resource(), call.key(), call.name(), &opts)
            .await?;
        // 202 tells the client the object is still there, waiting for finalizers or termination.
        Ok(json_reply(if gone { 200 } else { 202 }, &obj))
    }

    pub async fn delete_collection(&self, mut call: Call) -> Result<Reply> {
        let resource = call.resource();
        let body = call.body().await?;
        let opts = DeleteOptions::parse(&body, &call)?;
        let filter = Filter::from_call(&call)?;
        let (all, _) = self
            .store
            .list(&collection_prefix(resource, call.namespace()));
        let mut items = Vec::new();
        for stored in all.iter().filter(|s| filter.matches(&s.value)) {
            let ns = meta::meta_str(&stored.value, "namespace");
            let name = meta::meta_str(&stored.value, "name").unwrap_or_default();
            let key = super::object_key(resource, ns, name);
            match self.delete_one(resource, key, name, &opts).await {
                Ok((obj, _)) => items.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(), "metadata": {"resourceVersion": self.store.current_rv().to_string()}, "items": items});
        Ok(bytes_reply(
            200,
            "application/json",
            serde_json::to_vec(&list).map_err(ApiError::internal)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;

    fn opts(policy: Option<&str>, grace: Option<i64>) -> DeleteOptions {
        DeleteOptions {
            policy: policy.map(str::to_string),
            grace,
            ..Default::default()
        }
    }

    #[test]
    fn plans() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "a"}});
        assert!(matches!(
            plan(cm, &obj, &opts(Some("Background"), None)),
            Plan::Remove
        ));
        let Plan::Mark(marked) = plan(cm, &obj, &opts(Some("Foreground"), None)) else {
            panic!()
        };
        assert_eq!(
            marked["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert!(matches!(
            plan(cm, &marked, &opts(Some("Foreground"), None)),
            Plan::Pending
        ));

        let pod = lookup("", "v1", "pods").unwrap();
        let unbound =
            json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}});
        assert!(matches!(
            plan(pod, &unbound, &opts(None, None)),
            Plan::Remove
        ));
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        let Plan::Mark(terminating) = plan(pod, &bound, &opts(None, None)) else {
            panic!()
        };
        assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(matches!(
            plan(pod, &terminating, &opts(None, Some(0))),
            Plan::Remove
        ));

        // A custom resource named like a built-in kind is deleted as any other object.
        static CUSTOM_POD: Resource = Resource {
            group: "example.com",
            version: "v1",
            kind: "Pod",
            plural: "pods",
            singular: "pod",
            short_names: &[],
            scope: kinet_types::registry::Scope::Namespaced,
            categories: &[],
            subresources: &[],
        };
        assert!(matches!(
            plan(&CUSTOM_POD, &bound, &opts(None, None)),
            Plan::Remove
        ));
        let custom_ns = Resource {
            kind: "Namespace",
            plural: "namespaces",
            ..CUSTOM_POD
        };
        let live = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(matches!(
            plan(&custom_ns, &live, &opts(None, None)),
            Plan::Remove
        ));

        let ns = lookup("", "v1", "namespaces").unwrap();
        let live = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let Plan::Mark(term) = plan(ns, &live, &opts(None, None)) else {
            panic!()
        };
        assert_eq!(term["status"]["phase"], "Terminating");
        assert!(matches!(plan(ns, &term, &opts(None, None)), Plan::Pending));
        let mut finalized = term.clone();
        finalized["spec"]["finalizers"] = json!([]);
        assert!(matches!(
            plan(ns, &finalized, &opts(None, None)),
            Plan::Remove
        ));
    }
}
