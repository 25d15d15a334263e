//! The admission plugins that read stored objects (LimitRanger, ResourceQuota and Priority, over
//! the stored LimitRanges, ResourceQuotas and PriorityClasses), and the quota controller's part
//! that keeps each quota's `status.used`.
//!
//! Quota admission counts what the namespace holds now, under one lock held until the new
//! object is stored, so two creates cannot both take the last unit. kube-apiserver instead
//! compare-and-swaps `status.used`; with one API server process the lock gives the same answer.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::FutureExt;
use kinet_admission::{limits, priority, quota};
use kinet_store::Stored;
use kinet_types::registry::{self, Resource};
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use crate::rest::{collection_prefix, meta, object_key, Api};

fn core(plural: &str) -> &'static Resource {
    registry::lookup("", "v1", plural).expect("a core resource")
}

fn forbidden(resource: &Resource, obj: &Value, why: &str) -> ApiError {
    let name = meta::meta_str(obj, "name").unwrap_or_default();
    ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        resource.qualified_resource()
    ))
}

impl Api {
    fn in_namespace(&self, resource: &Resource, namespace: &str) -> Vec<Arc<Stored>> {
        self.store
            .list(&collection_prefix(resource, Some(namespace)))
            .0
    }

    /// LimitRanger's defaults for a new pod's containers.
    pub(crate) fn default_limits(&self, resource: &Resource, obj: &mut Value, namespace: &str) {
        if (resource.group, resource.plural) != ("", "pods") {
            return;
        }
        let ranges = self.in_namespace(core("limitranges"), namespace);
        if !ranges.is_empty() {
            let ranges: Vec<&Value> = ranges.iter().map(|r| &r.value).collect();
            limits::default_pod(obj, &ranges);
        }
    }

    /// Priority: a new pod's priority from its PriorityClass; 403 for a class that does not exist.
    pub(crate) fn admit_priority(&self, resource: &Resource, obj: &mut Value) -> Result<()> {
        if (resource.group, resource.plural) != ("", "pods") {
            return Ok(());
        }
        let classes = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("priorityclasses are served");
        let (stored, _) = self.store.list(&collection_prefix(classes, None));
        let stored: Vec<&Value> = stored.iter().map(|s| &s.value).collect();
        priority::admit(obj, &stored).map_err(|why| forbidden(resource, obj, &why))
    }

    /// LimitRanger's bounds on a new pod or claim: 403 naming the first range it breaks.
    pub(crate) fn check_limits(
        &self,
        resource: &Resource,
        obj: &Value,
        namespace: &str,
    ) -> Result<()> {
        let check = match (resource.group, resource.plural) {
            ("", "pods") => limits::check_pod,
            ("", "persistentvolumeclaims") => limits::check_claim,
            _ => return Ok(()),
        };
        for range in self.in_namespace(core("limitranges"), namespace) {
            if let Some(why) = check(obj, &range.value) {
                return Err(forbidden(resource, obj, &why));
            }
        }
        Ok(())
    }

    /// ResourceQuota admission of a new object. On success returns the guard to hold until
    /// the object is stored (none when the namespace has no quota).
    pub(crate) async fn admit_quota(
        &self,
        resource: &Resource,
        obj: &Value,
    ) -> Result<Option<tokio::sync::MutexGuard<'_, ()>>> {
        let Some(namespace) = meta::meta_str(obj, "namespace").filter(|_| resource.namespaced())
        else {
            return Ok(None);
        };
        let quotas = self.in_namespace(core("resourcequotas"), namespace);
        if quotas.is_empty() {
            return Ok(None);
        }
        let guard = self.quota_lock.lock().await;
        let existing = self.in_namespace(resource, namespace);
        for q in quotas {
            let used = quota::used(&q.value, existing.iter().map(|s| (resource, &s.value)));
            if let Some(why) = quota::refusal(&q.value, &used, resource, obj) {
                return Err(forbidden(resource, obj, &why));
            }
        }
        Ok(Some(guard))
    }
}

/// The built-in resource a quota key's objects belong to.
fn charged_resource(key: &str) -> Option<&'static Resource> {
    let (group, plural) = quota::charged_by(key)?;
    registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Writes `status.hard` and `status.used` of every quota in `namespace` that changed.
async fn refresh(api: &Api, namespace: &str) {
    for q in api.in_namespace(core("resourcequotas"), namespace) {
        let mut resources: Vec<&'static Resource> = quota::hard(&q.value)
            .keys()
            .filter_map(|k| charged_resource(k))
            .collect();
        resources.sort_by_key(|r| (r.group, r.plural));
        resources.dedup_by_key(|r| (r.group, r.plural));
        let objects: Vec<(&'static Resource, Arc<Stored>)> = resources
            .into_iter()
            .flat_map(|r| {
                api.in_namespace(r, namespace)
                    .into_iter()
                    .map(move |s| (r, s))
            })
            .collect();
        let used = quota::used(&q.value, objects.iter().map(|(r, s)| (*r, &s.value)));
        let text = |list: &kinet_admission::ResourceList| -> Value {
            list.iter()
                .map(|(k, v)| (k.clone(), json!(v.to_string())))
                .collect()
        };
        let status = json!({"hard": q.value["spec"]["hard"], "used": text(&used)});
        if q.value["status"] == status {
            continue;
        }
        let name = meta::meta_str(&q.value, "name")
            .unwrap_or_default()
            .to_string();
        let key = object_key(core("resourcequotas"), Some(namespace), &name);
        let written = api.write_status_over(&key, q.rv, status).await;
        if let Err(e) = written {
            tracing::warn!(quota = %name, namespace, error = %e.message, "could not write the quota's status");
        }
    }
}

/// The namespace of a stored key `<group>/<plural>/<namespace>/<name>`.
fn namespace_of(key: &str) -> Option<&str> {
    let mut parts = key.split('/');
    let (_, _, namespace, _) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(namespace)
}

/// Keeps every quota's status current: after each batch of changes, recomputes the quotas of
/// the namespaces the batch touched. Runs until the store closes.
pub async fn run_quota_status(api: Arc<Api>) {
    loop {
        let rv = api.store.current_rv();
        let (all, _) = api
            .store
            .list(&format!("{}/", core("resourcequotas").key_prefix()));
        let namespaces: BTreeSet<String> = all
            .iter()
            .filter_map(|q| meta::meta_str(&q.value, "namespace").map(str::to_string))
            .collect();
        for ns in &namespaces {
            refresh(&api, ns).await;
        }
        let Ok(mut watch) = api.store.watch("", Some(rv)) else {
            continue;
        };
        while let Some(first) = watch.next().await {
            let mut touched = BTreeSet::new();
            let mut event = Some(first);
            while let Some(e) = event {
                if let Some(ns) = namespace_of(&e.key) {
                    touched.insert(ns.to_string());
                }
                event = watch.next().now_or_never().flatten();
            }
            let quotas = core("resourcequotas");
            for ns in touched {
                if !api.in_namespace(quotas, &ns).is_empty() {
                    refresh(&api, &ns).await;
                }
            }
        }
        tracing::debug!("quota watch ended; relisting");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespaces_come_from_namespaced_keys_only() {
        assert_eq!(
            super::namespace_of("core/pods/default/web"),
            Some("default")
        );
        assert_eq!(super::namespace_of("apps/deployments/x/y"), Some("x"));
        assert_eq!(super::namespace_of("core/nodes/n1"), None);
    }
}
