//! Custom resources: the live registry of what CustomResourceDefinitions serve, and the
//! controller that keeps it (and each definition's status) in step with the store.
//!
//! Built-in kinds stay in the static [`kinet_types::registry`]; CRD-defined resources are
//! consulted after it. Handlers take `&'static Resource`, so each served version's `Resource`
//! is interned once per distinct definition (leaked, bounded by the definitions ever seen)
//! rather than giving every call site an owned variant.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
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
    /// The `apiVersion` objects are stored with.
    pub storage_api_version: String,
    pub list_kind: String,
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

    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        kinet_crd::validate::validate(&self.version.schema, obj)
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

/// Each definition, by name, with what it serves.
type Definitions = BTreeMap<String, (Definition, Vec<Arc<Served>>)>;

/// What every established definition serves, and how far the controller has caught up.
#[derive(Default)]
pub struct Registry {
    /// By CRD name.
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

    /// The custom resource at `/apis/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        self.read()
            .values()
            .flat_map(|(_, served)| served.iter())
            .find(|s| {
                let r = s.resource;
                r.group == group && r.version == version && r.plural == plural
            })
            .map(|s| s.resource)
    }

    /// The served version behind a resource, if it is a custom one.
    pub fn served(&self, resource: &Resource) -> Option<Arc<Served>> {
        self.read()
            .values()
            .flat_map(|(_, served)| served.iter())
            .find(|s| std::ptr::eq(s.resource, resource) || *s.resource == *resource)
            .cloned()
    }

    /// Every served custom resource version, grouped by group, in preferred-version order.
    pub fn resources(&self) -> Vec<&'static Resource> {
        let mut out: Vec<&'static Resource> = self
            .read()
            .values()
            .flat_map(|(_, served)| served.iter().map(|s| s.resource))
            .collect();
        out.sort_by(|a, b| {
            a.group
                .cmp(b.group)
                .then_with(|| version_priority(b.version).cmp(&version_priority(a.version)))
                .then_with(|| a.plural.cmp(b.plural))
        });
        out
    }

    fn set(&self, name: &str, definition: Definition) {
        let served = definition
            .versions
            .iter()
            .map(|v| {
                Arc::new(Served {
                    resource: intern(&definition, v),
                    version: v.clone(),
                    storage_api_version: format!("{}/{}", definition.group, definition.storage),
                    list_kind: definition.list_kind.clone(),
                })
            })
            .collect();
        let mut all = self.definitions.write().unwrap_or_else(|e| e.into_inner());
        all.insert(name.to_string(), (definition, served));
    }

    fn remove(&self, name: &str) {
        let mut all = self.definitions.write().unwrap_or_else(|e| e.into_inner());
        all.remove(name);
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

/// The CRD controller: serves every stored definition, keeps its status conditions
/// (NamesAccepted, Established) and storedVersions, and deletes a definition's objects when it
/// goes. Runs until the store closes.
pub async fn run(api: Arc<Api>) {
    let prefix = format!("{}/", crd_resource().key_prefix());
    loop {
        let (items, rv) = api.store.list(&prefix);
        for stored in &items {
            establish(&api, stored).await;
        }
        api.crds.mark_seen(rv);
        let Ok(mut watch) = api.store.watch(&prefix, Some(rv)) else {
            continue;
        };
        while let Some(event) = watch.next().await {
            match event.kind {
                kinet_store::EventType::Deleted => remove(&api, &event.object.value).await,
                _ => establish(&api, &event.object).await,
            }
            api.crds.mark_seen(event.rv);
        }
        tracing::debug!("CRD watch ended; relisting");
    }
}

fn crd_name(crd: &Value) -> &str {
    crd["metadata"]["name"].as_str().unwrap_or_default()
}

/// Serves a definition and records that in its status.
async fn establish(api: &Api, stored: &Stored) {
    let crd = &stored.value;
    let name = crd_name(crd).to_string();
    let definition = Definition::from_object(crd);
    let conflict = api.crds.read().iter().find_map(|(other, (d, _))| {
        (other != &name && d.group == definition.group && d.kind == definition.kind)
            .then(|| format!("{:?} is already in use", definition.kind))
    });
    if conflict.is_none() {
        api.crds.set(&name, definition.clone());
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
    json!({
        "conditions": [
            match conflict {
                None => condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
                Some(m) => condition("NamesAccepted", false, "KindConflict", m),
            },
            if accepted {
                condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted")
            } else {
                condition("Established", false, "NotAccepted", "not all names are accepted")
            },
        ],
        "acceptedNames": if accepted { d.accepted_names() } else { old["acceptedNames"].clone() },
        "storedVersions": stored_versions,
    })
}

/// Stops serving a deleted definition and deletes its objects, as the finalizer of
/// kube-apiextensions-apiserver does.
/// The objects go first, so once the resource is no longer served none of them is left.
async fn remove(api: &Api, crd: &Value) {
    let name = crd_name(crd);
    let definition = Definition::from_object(crd);
    let prefix = format!("{}/{}/", definition.group, definition.plural);
    for (key, _) in api.store.entries(&prefix) {
        if let Err(e) = api.store.write(&key, |_| Ok(Mutation::Delete)).await {
            tracing::warn!(%key, error = %e.message, "could not delete a custom resource");
        }
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
}
