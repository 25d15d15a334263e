//! Custom resources: the live registry of what CustomResourceDefinitions serve, and the
//! controller that keeps it (and each definition's status) in step with the store.
//!
//! Built-in kinds stay in the static [`kinet_types::registry`]; CRD-defined resources are
//! consulted after it. Handlers take `&'static Resource`, so each served version's `Resource`
//! is interned once per distinct definition (leaked, bounded by the definitions ever seen)
//! rather than giving every call site an owned variant.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use kinet_crd::{Definition, Version};
use kinet_store::{Mutation, Stored};
use kinet_types::registry::{Resource, Scope};
use kinet_types::FieldError;
use serde_json::{json, Value};

use crate::rest::Api;

/// The CRD resource itself.
pub fn crd_resource() -> &'static Resource {
    kinet_types::registry::lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CustomResourceDefinitions are served")
}

/// One served version of one custom resource.
#[derive(Debug)]
pub struct Served {
    pub resource: &'static Resource,
    pub version: Version,
    /// The version's CEL rules, compiled once.
    pub rules: kinet_crd::rules::Rules,
    /// The `apiVersion` objects are stored with.
    pub storage_api_version: String,
    pub list_kind: String,
    /// The definition is being deleted: its objects go, and no new one is created.
    pub terminating: bool,
}

impl Served {
    /// A client's body in stored shape: apiVersion/kind set, unknown fields pruned (their
    /// paths are returned for fieldValidation), defaults applied.
    pub fn decode(&self, obj: &mut Value) -> Vec<String> {
        if let Value::Object(map) = obj {
            map.insert("apiVersion".into(), json!(self.resource.api_version()));
            map.insert("kind".into(), json!(self.resource.kind));
        }
        let unknown = kinet_crd::prune::prune(&self.version.schema, obj);
        self.default(obj);
        unknown
    }

    /// Applies the schema's defaults.
    pub fn default(&self, obj: &mut Value) {
        kinet_crd::defaults::apply(&self.version.schema, obj);
    }

    /// The schema's and its CEL rules' verdict on `obj`; `old` is the object it replaces.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        kinet_crd::validate::validate_with_rules(&self.version.schema, &self.rules, obj, old)
    }

    /// The object as stored: in the storage version (the None conversion rewrites apiVersion).
    pub fn to_storage(&self, mut obj: Value) -> Value {
        obj["apiVersion"] = json!(self.storage_api_version);
        obj
    }

    /// A stored object as this version serves it.
    pub fn convert<'a>(&self, stored: &'a Stored) -> Cow<'a, Stored> {
        let api_version = self.resource.api_version();
        if stored.value["apiVersion"] == api_version.as_str() {
            return Cow::Borrowed(stored);
        }
        let mut value = stored.value.clone();
        value["apiVersion"] = json!(api_version);
        self.default(&mut value);
        Cow::Owned(Stored {
            json: serde_json::to_vec(&value).unwrap_or_default().into(),
            value,
            rv: stored.rv,
        })
    }

    /// A Table of objects with this version's printer columns.
    pub fn table(
        &self,
        objects: &[&Value],
        metadata: &Value,
        include: kinet_printers::IncludeObject,
    ) -> Vec<u8> {
        let now = chrono::Utc::now();
        let columns = &self.version.columns;
        kinet_printers::table_json_with(
            kinet_crd::columns::definitions(columns),
            &|obj| kinet_crd::columns::cells(columns, obj, now),
            objects,
            metadata,
            include,
        )
    }
}

/// What the established definitions serve, by name and indexed for the request path.
#[derive(Default)]
struct Definitions {
    by_name: BTreeMap<String, (Definition, Vec<Arc<Served>>)>,
    /// By (group, version, plural), as paths name them.
    by_path: HashMap<(&'static str, &'static str, &'static str), Arc<Served>>,
    /// By the address of the interned `Resource`: one per distinct served version.
    by_resource: HashMap<usize, Arc<Served>>,
    /// The OpenAPI v3 documents, made again only after a definition changes.
    documents: Option<Arc<[Document]>>,
}

fn address(r: &Resource) -> usize {
    std::ptr::from_ref(r) as usize
}

/// The OpenAPI v3 document of one custom group/version.
#[derive(Debug)]
pub struct Document {
    /// `apis/{group}/{version}`.
    pub path: String,
    pub body: Vec<u8>,
    /// What the index gives kubectl to key its cache on.
    pub hash: String,
}

/// What every established definition serves, and how far the controller has caught up.
#[derive(Default)]
pub struct Registry {
    definitions: RwLock<Definitions>,
    /// The store revision whose CRD changes are all served.
    seen: Mutex<u64>,
    caught_up: tokio::sync::Notify,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("crds::Registry")
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Definitions> {
        self.definitions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Definitions> {
        self.definitions.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The custom resource at `/apis/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        let all = self.read();
        // Keys hold `&'static str`; looked up with the request's shorter-lived ones.
        let by_path: &HashMap<(&str, &str, &str), Arc<Served>> = &all.by_path;
        by_path.get(&(group, version, plural)).map(|s| s.resource)
    }

    /// The served version behind a resource, if it is a custom one.
    pub fn served(&self, resource: &Resource) -> Option<Arc<Served>> {
        self.read().by_resource.get(&address(resource)).cloned()
    }

    /// Every served custom resource version, grouped by group, in preferred-version order.
    pub fn resources(&self) -> Vec<&'static Resource> {
        let mut out: Vec<&'static Resource> = self
            .read()
            .by_resource
            .values()
            .map(|s| s.resource)
            .collect();
        out.sort_by(|a, b| {
            a.group
                .cmp(b.group)
                .then_with(|| version_priority(b.version).cmp(&version_priority(a.version)))
                .then_with(|| a.plural.cmp(b.plural))
        });
        out
    }

    /// The OpenAPI v3 documents of the custom group/versions, made once per change of the
    /// definitions.
    pub fn documents(&self) -> Arc<[Document]> {
        if let Some(docs) = &self.read().documents {
            return docs.clone();
        }
        let mut all = self.write();
        let mut by_gv: BTreeMap<(&str, &str), Vec<(&Resource, &Value)>> = BTreeMap::new();
        for s in all.by_resource.values() {
            let r = s.resource;
            by_gv
                .entry((r.group, r.version))
                .or_default()
                .push((r, &s.version.schema));
        }
        let docs: Arc<[Document]> = by_gv
            .into_iter()
            .map(|((group, version), mut kinds)| {
                kinds.sort_by_key(|(r, _)| r.plural);
                let body = serde_json::to_vec(&crate::openapi::custom_document(&kinds))
                    .unwrap_or_default();
                Document {
                    path: format!("apis/{group}/{version}"),
                    hash: format!("{:016X}", kinet_types::hash::fnv1a_64(&body)),
                    body,
                }
            })
            .collect();
        all.documents = Some(docs.clone());
        docs
    }

    fn set(&self, name: &str, definition: Definition, terminating: bool) {
        let served: Vec<Arc<Served>> = definition
            .versions
            .iter()
            .map(|v| {
                Arc::new(Served {
                    resource: intern(&definition, v),
                    rules: kinet_crd::rules::Rules::new(&v.schema),
                    version: v.clone(),
                    storage_api_version: format!("{}/{}", definition.group, definition.storage),
                    list_kind: definition.list_kind.clone(),
                    terminating,
                })
            })
            .collect();
        let mut all = self.write();
        all.forget(name);
        for s in &served {
            let r = s.resource;
            all.by_path
                .insert((r.group, r.version, r.plural), s.clone());
            all.by_resource.insert(address(r), s.clone());
        }
        all.by_name.insert(name.to_string(), (definition, served));
    }

    fn remove(&self, name: &str) {
        self.write().forget(name);
    }

    /// The served definitions whose names are not in `listed`: deleted while no watch was
    /// open.
    fn vanished(&self, listed: &HashSet<&str>) -> Vec<(String, Definition)> {
        self.read()
            .by_name
            .iter()
            .filter(|(name, _)| !listed.contains(name.as_str()))
            .map(|(name, (d, _))| (name.clone(), d.clone()))
            .collect()
    }

    fn mark_seen(&self, rv: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = (*seen).max(rv);
        self.caught_up.notify_waiters();
    }

    /// Waits (up to a bound) until the controller has served the definition written at `rv`,
    /// so a client's next request after its CRD write finds the new resource, as it would
    /// once the definition is Established.
    pub async fn wait_for(&self, rv: u64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let notified = self.caught_up.notified();
            if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) >= rv {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(rv, "the CRD controller has not caught up");
                return;
            }
        }
    }
}

impl Definitions {
    /// Drops a definition and its indexes.
    fn forget(&mut self, name: &str) {
        if let Some((_, served)) = self.by_name.remove(name) {
            for s in served {
                let r = s.resource;
                self.by_path.remove(&(r.group, r.version, r.plural));
                self.by_resource.remove(&address(r));
            }
        }
        self.documents = None;
    }
}

/// kube-apiserver's version order: GA before beta before alpha, higher numbers first, and
/// names that do not look like Kubernetes versions last.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(u32::MAX))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(u32::MAX))
    } else {
        return (0, 0, 0);
    };
    if minor == u32::MAX {
        return (0, 0, 0);
    }
    (level, major, minor)
}

type InternKey = (
    String,
    String,
    String,
    String,
    String,
    Vec<String>,
    bool,
    Vec<String>,
    Vec<&'static str>,
);

/// The `&'static Resource` of one served version: made once per distinct definition.
fn intern(d: &Definition, v: &Version) -> &'static Resource {
    static INTERNED: Mutex<Option<HashMap<InternKey, &'static Resource>>> = Mutex::new(None);
    let mut subresources = Vec::new();
    if v.status {
        subresources.push("status");
    }
    if v.scale.is_some() {
        subresources.push("scale");
    }
    let key: InternKey = (
        d.group.clone(),
        v.name.clone(),
        d.kind.clone(),
        d.plural.clone(),
        d.singular.clone(),
        d.short_names.clone(),
        d.namespaced,
        d.categories.clone(),
        subresources,
    );
    let mut guard = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let table = guard.get_or_insert_with(HashMap::new);
    if let Some(r) = table.get(&key) {
        return r;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let leak_all = |items: &[String]| -> &'static [&'static str] {
        Box::leak(
            items
                .iter()
                .map(|s| leak(s))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    };
    let resource: &'static Resource = Box::leak(Box::new(Resource {
        group: leak(&d.group),
        version: leak(&v.name),
        kind: leak(&d.kind),
        plural: leak(&d.plural),
        singular: leak(&d.singular),
        short_names: leak_all(&d.short_names),
        scope: if d.namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        },
        categories: leak_all(&d.categories),
        subresources: Box::leak(key.8.clone().into_boxed_slice()),
    }));
    table.insert(key, resource);
    resource
}

/// The finalizer kube-apiserver puts on a definition being deleted: the definition stays,
/// Terminating, until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The CRD controller: serves every stored definition, keeps its status conditions
/// (NamesAccepted, Established) and storedVersions, and runs the cleanup finalizer of the
/// definitions being deleted. Runs until the store closes.
pub async fn run(api: Arc<Api>) {
    let prefix = format!("{}/", crd_resource().key_prefix());
    let cleanups = Cleanups::default();
    loop {
        let (items, rv) = api.store.list(&prefix);
        let listed: HashSet<&str> = items.iter().map(|s| crd_name(&s.value)).collect();
        for (name, definition) in api.crds.vanished(&listed) {
            forget(&api, &name, &definition).await;
        }
        for stored in &items {
            sync(&api, stored, &cleanups).await;
        }
        api.crds.mark_seen(rv);
        let Ok(mut watch) = api.store.watch(&prefix, Some(rv)) else {
            continue;
        };
        while let Some(event) = watch.next().await {
            match event.kind {
                kinet_store::EventType::Deleted => {
                    let crd = &event.object.value;
                    forget(&api, crd_name(crd), &Definition::from_object(crd)).await
                }
                _ => sync(&api, &event.object, &cleanups).await,
            }
            api.crds.mark_seen(event.rv);
        }
        tracing::debug!("CRD watch ended; relisting");
    }
}

fn crd_name(crd: &Value) -> &str {
    crd["metadata"]["name"].as_str().unwrap_or_default()
}

/// Serves a definition, and starts its cleanup once it is being deleted.
async fn sync(api: &Arc<Api>, stored: &Stored, cleanups: &Cleanups) {
    establish(api, stored).await;
    if finalizing(&stored.value) {
        cleanups.start(api, crd_name(&stored.value));
    }
}

/// Serves a definition and records that in its status.
async fn establish(api: &Api, stored: &Stored) {
    let crd = &stored.value;
    let name = crd_name(crd).to_string();
    let definition = Definition::from_object(crd);
    let conflict = api.crds.read().by_name.iter().find_map(|(other, (d, _))| {
        (other != &name && d.group == definition.group && d.kind == definition.kind)
            .then(|| format!("{:?} is already in use", definition.kind))
    });
    if conflict.is_none() {
        let terminating = crd["metadata"]["deletionTimestamp"].is_string();
        api.crds.set(&name, definition.clone(), terminating);
    }
    let status = status_for(&definition, &crd["status"], conflict.as_deref());
    if crd["status"] == status {
        return;
    }
    let key = crate::rest::object_key(crd_resource(), None, &name);
    let written = api.write_status_over(&key, stored.rv, status).await;
    if let Err(e) = written {
        tracing::warn!(crd = %name, error = %e.message, "could not write the definition's status");
    }
}

/// Changes the stored definition `name` (nothing when it is gone).
async fn write_crd(
    api: &Api,
    name: &str,
    f: impl FnOnce(&Value) -> Mutation + Send + 'static,
) -> Result<(), kinet_types::ApiError> {
    let key = crate::rest::object_key(crd_resource(), None, name);
    api.store
        .write(&key, move |current| {
            Ok(current.map_or(Mutation::Unchanged, f))
        })
        .await
        .map(drop)
}

/// Marked for deletion with the cleanup finalizer still on.
fn finalizing(crd: &Value) -> bool {
    crd["metadata"]["deletionTimestamp"].is_string()
        && crd["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER))
}

/// What the delete of a definition does before it is finalized: kube-apiserver's REST
/// delete adds the cleanup finalizer and says so in a Terminating condition.
pub(crate) fn mark_terminating(crd: &mut Value) {
    set_condition(
        crd,
        terminating(
            true,
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        ),
    );
}

fn terminating(on: bool, reason: &str, message: &str) -> Value {
    let status = if on { "True" } else { "False" };
    json!({"type": "Terminating", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
}

/// Sets a status condition, keeping its transition time when its status is unchanged.
fn set_condition(crd: &mut Value, mut condition: Value) {
    let status = &mut crd["status"];
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("an array");
    match conditions
        .iter_mut()
        .find(|c| c["type"] == condition["type"])
    {
        Some(old) => {
            if old["status"] == condition["status"] {
                condition["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = condition;
        }
        None => conditions.push(condition),
    }
}

/// The definitions whose cleanup is running, so a watch event does not start a second one.
#[derive(Default, Clone)]
struct Cleanups(Arc<Mutex<HashSet<String>>>);

const CLEANUP_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(500);
const CLEANUP_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl Cleanups {
    fn start(&self, api: &Arc<Api>, name: &str) {
        if !self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
        {
            return;
        }
        let (api, name, running) = (api.clone(), name.to_string(), self.clone());
        tokio::spawn(async move {
            let mut delay = CLEANUP_RETRY_FIRST;
            // Retried with back-off, as the finalizer controller's work queue does, until the
            // objects are gone (their own finalizers may hold them for a while).
            while let Err(e) = finalize(&api, &name).await {
                tracing::info!(crd = %name, "cleanup not done yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(CLEANUP_RETRY_MAX);
            }
            running
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        });
    }
}

/// One pass of the cleanup finalizer (kube-apiextensions-apiserver's CRDFinalizer): deletes
/// every object of the definition as a client's delete would (their finalizers honoured),
/// and once none is left removes the finalizer, which deletes the definition.
async fn finalize(api: &Api, name: &str) -> Result<(), String> {
    let key = crate::rest::object_key(crd_resource(), None, name);
    let Some(stored) = api.store.get(&key) else {
        return Ok(());
    };
    if !finalizing(&stored.value) {
        return Ok(());
    }
    let definition = Definition::from_object(&stored.value);
    let condition = match delete_instances(api, &definition).await {
        Ok(0) => terminating(false, "InstanceDeletionCompleted", "removed all instances"),
        Ok(left) => terminating(
            true,
            "InstanceDeletionCheck",
            &format!("could not confirm zero CustomResources remaining: {left} left"),
        ),
        Err(e) => terminating(
            true,
            "InstanceDeletionFailed",
            &format!("could not issue all deletes: {e}"),
        ),
    };
    let done = condition["status"] == "False";
    let message = condition["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    write_crd(api, name, move |current| {
        let mut next = current.clone();
        set_condition(&mut next, condition);
        if !done {
            return Mutation::Put(next);
        }
        if let Some(f) = next["metadata"]["finalizers"].as_array_mut() {
            f.retain(|f| f != CLEANUP_FINALIZER);
            if f.is_empty() {
                return Mutation::Delete;
            }
        }
        Mutation::Put(next)
    })
    .await
    .map_err(|e| e.message)?;
    if done {
        Ok(())
    } else {
        Err(message)
    }
}

/// Deletes the definition's objects; how many are still there after (held by finalizers).
async fn delete_instances(api: &Api, d: &Definition) -> Result<usize, String> {
    let Some(storage) = d.versions.iter().find(|v| v.name == d.storage) else {
        return Ok(0);
    };
    let resource = intern(d, storage);
    if api.crds.served(resource).is_none() {
        // Never established (its names conflicted): no object was ever written.
        return Ok(0);
    }
    let prefix = format!("{}/", resource.key_prefix());
    let mut errors = Vec::new();
    for (key, stored) in api.store.entries(&prefix) {
        let name = stored.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default();
        match api.delete_object(resource, key, name).await {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => errors.push(e.message),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join(", "));
    }
    Ok(api.store.entries(&prefix).len())
}

/// The status the naming and establishing controllers give a definition.
fn status_for(d: &Definition, old: &Value, conflict: Option<&str>) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let previous = |kind: &str| {
        old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
    };
    let condition = |kind: &str, ok: bool, reason: &str, message: &str| {
        let status = if ok { "True" } else { "False" };
        let since = previous(kind)
            .filter(|c| c["status"] == status)
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or_else(|| json!(now));
        json!({"type": kind, "status": status, "lastTransitionTime": since,
            "reason": reason, "message": message})
    };
    let accepted = conflict.is_none();
    let mut stored_versions: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !stored_versions.contains(&json!(d.storage)) {
        stored_versions.push(json!(d.storage));
    }
    let mut conditions = vec![
        match conflict {
            None => condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
            Some(m) => condition("NamesAccepted", false, "KindConflict", m),
        },
        if accepted {
            condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            )
        } else {
            condition(
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
            )
        },
    ];
    // Other controllers' conditions (Terminating) stay.
    conditions.extend(
        old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["type"] != "NamesAccepted" && c["type"] != "Established")
            .cloned(),
    );
    json!({
        "conditions": conditions,
        "acceptedNames": if accepted { d.accepted_names() } else { old["acceptedNames"].clone() },
        "storedVersions": stored_versions,
    })
}

/// Stops serving a definition that is gone, deleting any object it left behind (one deleted
/// without the cleanup finalizer, as a store restored from a backup may hold).
async fn forget(api: &Api, name: &str, definition: &Definition) {
    if let Err(e) = delete_instances(api, definition).await {
        tracing::warn!(crd = %name, "could not delete the objects of a deleted definition: {e}");
    }
    api.crds.remove(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kube() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "foo", "v1", "v1beta1", "v10"];
        v.sort_by_key(|s| std::cmp::Reverse(version_priority(s)));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn status_names_and_establishes() {
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Cluster", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let d = Definition::from_object(&crd);
        let s = status_for(&d, &Value::Null, None);
        assert_eq!(s["conditions"][0]["reason"], "NoConflicts");
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(s["storedVersions"], json!(["v1"]));
        // A fixed point: nothing to write the second time.
        assert_eq!(status_for(&d, &s, None), s);
        let refused = status_for(&d, &Value::Null, Some("\"Widget\" is already in use"));
        assert_eq!(refused["conditions"][0]["status"], "False");
        assert_eq!(refused["conditions"][1]["status"], "False");
    }

    #[test]
    fn interning_reuses_one_resource_per_definition() {
        let crd = json!({"metadata": {"name": "gadgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced", "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let d = Definition::from_object(&crd);
        let a = intern(&d, &d.versions[0]);
        let b = intern(&d, &d.versions[0]);
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.key_prefix(), "example.com/gadgets");
        assert!(a.has_status() && a.namespaced());
    }

    fn definition(plural: &str, versions: &[&str]) -> Definition {
        let versions: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"name": v, "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": {"type": "object"}}})
            })
            .collect();
        Definition::from_object(
            &json!({"metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": plural, "kind": format!("K{plural}")}, "versions": versions}}),
        )
    }

    #[test]
    fn a_relist_finds_the_definitions_deleted_meanwhile() {
        let registry = Registry::default();
        registry.set("as.example.com", definition("as", &["v1"]), false);
        registry.set("bs.example.com", definition("bs", &["v1"]), false);
        let listed = HashSet::from(["bs.example.com"]);
        let gone: Vec<String> = registry
            .vanished(&listed)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(gone, ["as.example.com"]);
    }

    #[test]
    fn lookups_follow_the_definitions() {
        let registry = Registry::default();
        registry.set("cs.example.com", definition("cs", &["v1", "v2"]), false);
        let v2 = registry.lookup("example.com", "v2", "cs").unwrap();
        assert_eq!(registry.served(v2).unwrap().version.name, "v2");
        let pods = kinet_types::registry::lookup("", "v1", "pods").unwrap();
        assert!(registry.served(pods).is_none());
        registry.set("cs.example.com", definition("cs", &["v1"]), false);
        assert!(registry.lookup("example.com", "v2", "cs").is_none());
        assert!(registry.served(v2).is_none());
        registry.remove("cs.example.com");
        assert!(registry.lookup("example.com", "v1", "cs").is_none());
        assert!(registry.resources().is_empty());
    }

    #[test]
    fn documents_are_one_per_group_version_and_kept_until_a_change() {
        let registry = Registry::default();
        // Versions kube does not order sort by plural: ds/abc, es/xyz, fs/abc.
        registry.set("ds.example.com", definition("ds", &["abc"]), false);
        registry.set("es.example.com", definition("es", &["xyz"]), false);
        registry.set("fs.example.com", definition("fs", &["abc"]), false);
        let docs = registry.documents();
        let paths: Vec<&str> = docs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["apis/example.com/abc", "apis/example.com/xyz"]);
        assert!(Arc::ptr_eq(&docs, &registry.documents()));
        registry.remove("es.example.com");
        assert_eq!(registry.documents().len(), 1);
    }

    #[test]
    fn the_status_keeps_the_terminating_condition() {
        let d = definition("gs", &["v1"]);
        let mut crd = json!({"status": status_for(&d, &Value::Null, None)});
        mark_terminating(&mut crd);
        let s = status_for(&d, &crd["status"], None);
        assert_eq!(s, crd["status"], "a fixed point");
        assert_eq!(s["conditions"][2]["reason"], "InstanceDeletionPending");
    }
}
