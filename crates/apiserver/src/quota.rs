//! ResourceQuota: admission charges each write against the quota's kept `status.used` with a
//! compare-and-swap of the quota's status, as kube-apiserver's plugin does, and a status task
//! recounts what each namespace with quotas holds after every batch of changes.
//!
//! A recount must not see a charge whose object is not stored yet (it would give the charge
//! back and let a later write overshoot). So each namespace has a read-write lock: charges hold
//! it shared from the charge until their object is stored, a recount holds it alone. Writes in
//! different namespaces never wait for each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use kinet_admission::quota::{self, Charge};
use kinet_admission::ResourceList;
use kinet_store::{EventType, Mutation, Stored};
use kinet_types::registry::{self, Resource};
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use crate::plugins::{core, forbidden};
use crate::rest::{meta, object_key, Api};

/// One lock per namespace that has had quota work: shared by charges, exclusive to recounts.
#[derive(Default)]
pub struct QuotaLocks(Mutex<HashMap<String, Arc<RwLock<()>>>>);

/// Held from a charge until the charged object is stored.
pub type Charged = OwnedRwLockReadGuard<()>;

impl QuotaLocks {
    fn of(&self, namespace: &str) -> Arc<RwLock<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(namespace.to_string()).or_default().clone()
    }

    /// Drops the lock of a namespace that no longer has quotas, unless a charge or recount
    /// still holds it: a fresh lock beside a held one would let the two run together.
    fn forget(&self, namespace: &str) {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if locks
            .get(namespace)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(namespace);
        }
    }
}

/// Writes `used` as the quota's `status.used` only over revision `rv`; false on a conflict.
async fn swap_used(api: &Api, key: &str, rv: u64, used: &ResourceList) -> Result<bool> {
    let used = text(used);
    let written = api
        .store
        .write(key, move |current| match current {
            Some(c) if meta::resource_version(c) == Some(rv) => {
                let mut next = c.clone();
                next["status"]["used"] = used;
                Ok(Mutation::Put(next))
            }
            _ => Err(ApiError::conflict(core("resourcequotas"), "")),
        })
        .await;
    match written {
        Ok(_) => Ok(true),
        Err(e) if e.reason == "Conflict" => Ok(false),
        Err(e) => Err(e),
    }
}

fn text(list: &ResourceList) -> Value {
    list.iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string())))
        .collect()
}

impl Api {
    /// ResourceQuota admission of a write of `obj` (over `old` on update). On success returns
    /// the guard to hold until the object is stored (none when the namespace has no quota). A
    /// dry run is checked but not charged.
    pub(crate) async fn admit_quota(
        &self,
        resource: &Resource,
        obj: &Value,
        old: Option<&Value>,
        dry: bool,
    ) -> Result<Option<Charged>> {
        let Some(namespace) = meta::meta_str(obj, "namespace").filter(|_| resource.namespaced())
        else {
            return Ok(None);
        };
        let mut recounted = false;
        loop {
            let guard = self.quota_locks.of(namespace).read_owned().await;
            let quotas = self.in_namespace(core("resourcequotas"), namespace);
            if quotas.is_empty() {
                return Ok(None);
            }
            let mut unknown = None;
            for q in quotas {
                unknown = self.charge_one(q, resource, obj, old, dry).await?;
                if unknown.is_some() {
                    break;
                }
            }
            let Some((quota, keys)) = unknown else {
                return Ok(Some(guard));
            };
            // A quota whose usage is not computed yet: count it now, once, then charge again.
            if recounted {
                return Err(forbidden(
                    resource,
                    obj,
                    &quota::unknown_status(&quota, &keys),
                ));
            }
            drop(guard);
            recount(self, namespace).await;
            recounted = true;
        }
    }

    /// Charges one quota, again over a fresh read after each lost compare-and-swap. `Err` is a
    /// refusal; `Some` the quota and the keys its status has not counted yet.
    async fn charge_one(
        &self,
        mut q: Arc<Stored>,
        resource: &Resource,
        obj: &Value,
        old: Option<&Value>,
        dry: bool,
    ) -> Result<Option<(Value, Vec<String>)>> {
        loop {
            let used = match quota::charge(&q.value, resource, obj, old) {
                Charge::Free => return Ok(None),
                Charge::Refused(why) => return Err(forbidden(resource, obj, &why)),
                Charge::Unknown(keys) => return Ok(Some((q.value.clone(), keys))),
                Charge::Used(_) if dry => return Ok(None),
                Charge::Used(used) => used,
            };
            let name = meta::meta_str(&q.value, "name").unwrap_or_default();
            let namespace = meta::meta_str(&q.value, "namespace");
            let key = object_key(core("resourcequotas"), namespace, name);
            if swap_used(self, &key, q.rv, &used).await? {
                return Ok(None);
            }
            match self.store.get(&key) {
                Some(fresh) => q = fresh,
                None => return Ok(None),
            }
        }
    }
}

/// The built-in resource a quota key's objects belong to.
fn charged_resource(key: &str) -> Option<&'static Resource> {
    let (group, plural) = quota::charged_by(key)?;
    registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Recounts `status.hard` and `status.used` of every quota in `namespace` and writes those
/// that changed, while no charge is in flight there.
async fn recount(api: &Api, namespace: &str) {
    let _alone = api.quota_locks.of(namespace).write_owned().await;
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

/// Keeps every quota's status current: after each batch of changes, recounts the quotas of
/// the namespaces the batch touched that have quotas, a set kept from the quotas' own events.
/// Runs until the store closes.
pub async fn run_quota_status(api: Arc<Api>) {
    let quota_keys = format!("{}/", core("resourcequotas").key_prefix());
    loop {
        let rv = api.store.current_rv();
        let (all, _) = api.store.list(&quota_keys);
        let mut quoted: BTreeSet<String> = all
            .iter()
            .filter_map(|q| meta::meta_str(&q.value, "namespace").map(str::to_string))
            .collect();
        for ns in &quoted {
            recount(&api, ns).await;
        }
        let Ok(mut watch) = api.store.watch("", Some(rv)) else {
            continue;
        };
        while let Some(first) = watch.next().await {
            let (mut touched, mut lost_one) = (BTreeSet::new(), BTreeSet::new());
            let mut event = Some(first);
            while let Some(e) = event {
                if let Some(ns) = namespace_of(&e.key) {
                    if e.key.starts_with(&quota_keys) {
                        match e.kind {
                            EventType::Deleted => lost_one.insert(ns.to_string()),
                            _ => quoted.insert(ns.to_string()),
                        };
                    }
                    touched.insert(ns.to_string());
                }
                event = watch.next().now_or_never().flatten();
            }
            for ns in lost_one {
                if api.in_namespace(core("resourcequotas"), &ns).is_empty() {
                    quoted.remove(&ns);
                    api.quota_locks.forget(&ns);
                }
            }
            for ns in touched.intersection(&quoted) {
                recount(&api, ns).await;
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
