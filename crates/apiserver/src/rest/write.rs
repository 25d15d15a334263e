//! Create, update (PUT) and patch. Every write runs the same pipeline as kube-apiserver:
//! decode and field validation, system metadata, strategy, defaulting, validation, allocation,
//! then one conditional store write. A refused request writes nothing.

use std::sync::Arc;

use kinet_patch::PatchType;
use kinet_store::{Mutation, Stored};
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use serde_json::Value;

use super::services::{self, Holdings};
use super::strategy::{self, Part};
use super::{collection_prefix, meta, object_key, Api, Call, Format};
use crate::crds::Served;
use crate::http::{bytes_reply, Reply};

/// A create or update body and its duplicate keys: JSON, YAML, or the protobuf that typed
/// clients send.
pub(crate) fn parse_object(content_type: &str, body: &[u8]) -> Result<(Value, Vec<String>)> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" | "*/*" => kinet_admission::parse_json_with_duplicates(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as JSON: {e}"
                ))
            }),
        "application/yaml" => serde_yaml_ng::from_slice(body)
            .map(|v| (v, Vec::new()))
            .map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            }),
        kinet_protobuf::MEDIA_TYPE => Ok((kinet_protobuf::decode(body)?, Vec::new())),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                kinet_protobuf::MEDIA_TYPE,
            ],
        )),
    }
}

/// Replaces `obj` with its stored form (decoded into the kind's type and encoded again), and
/// applies `fieldValidation` to its duplicate and unknown fields: Strict fails, Warn (the
/// server default) returns the `Warning` texts, Ignore neither. Refuses bodies that do not decode.
fn decode(
    resource: &Resource,
    obj: &mut Value,
    duplicates: &[String],
    call: &Call,
    custom: Option<&Served>,
) -> Result<Vec<String>> {
    meta::check_type(resource, obj)?;
    let unknown = match custom {
        Some(served) => served.decode(obj),
        None => {
            let canonical = kinet_admission::canonicalize(resource, std::mem::take(obj))?;
            *obj = canonical.object;
            canonical.unknown
        }
    };
    let problems = kinet_admission::field_problems(duplicates, &unknown);
    match call.query.get("fieldValidation").unwrap_or("Warn") {
        "Strict" if !problems.is_empty() => {
            Err(kinet_admission::strict_decoding_error(resource, &problems))
        }
        "Ignore" => Ok(Vec::new()),
        "Strict" | "Warn" => Ok(problems),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got \"{other}\""
        ))),
    }
}

/// The last step before an object is stored: the form its typed struct encodes. Server-side
/// steps (strategy, defaults, system fields) only add what the schema knows, so a failure here
/// is a server bug, answered 500 instead of storing something typed clients cannot read.
pub(crate) fn stored_form(resource: &Resource, obj: Value) -> Result<Value> {
    kinet_admission::reencode(resource, obj).map_err(|e| {
        ApiError::internal(format!(
            "refusing to store an object that does not decode: {e}"
        ))
    })
}

fn dry_run(call: &Call) -> bool {
    call.query.all("dryRun").contains(&"All")
}

/// A reply carrying `Warning` headers, as kube-apiserver sends for field validation.
fn with_warnings(mut reply: Reply, warnings: &[String]) -> Reply {
    for w in warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {w:?}")) {
            reply.headers_mut().append(http::header::WARNING, v);
        }
    }
    reply
}

impl Api {
    fn object_reply(
        &self,
        resource: &Resource,
        format: Format,
        status: u16,
        stored: &Stored,
    ) -> Reply {
        match format {
            Format::Json => {
                let stored = self.served_form(resource, stored);
                bytes_reply(status, "application/json", stored.json.clone())
            }
            Format::Table => self.render_one(resource, format, stored),
        }
    }

    /// The form an object is stored in: built-ins through their typed struct, custom resources
    /// in their storage version.
    pub(super) fn to_stored(&self, resource: &Resource, obj: Value) -> Result<Value> {
        match self.crds.served(resource) {
            Some(served) => Ok(served.to_storage(obj)),
            None => stored_form(resource, obj),
        }
    }

    /// A CRD write returns once the definition is served, so the client's next request finds
    /// the new resource.
    async fn settle(&self, resource: &Resource, stored: &Stored, dry: bool) {
        if !dry && std::ptr::eq(resource, crate::crds::crd_resource()) {
            self.crds.wait_for(stored.rv).await;
        }
    }

    /// Refuses creates in a namespace that does not exist or is being deleted.
    fn check_namespace(&self, resource: &Resource, namespace: Option<&str>) -> Result<()> {
        let (Some(ns), true) = (namespace, resource.namespaced()) else {
            return Ok(());
        };
        let ns_resource =
            kinet_types::registry::lookup("", "v1", "namespaces").expect("namespaces are served");
        let Some(stored) = self.store.get(&object_key(ns_resource, None, ns)) else {
            return Err(ApiError::not_found(ns_resource, ns));
        };
        if stored.value["status"]["phase"] == "Terminating" {
            return Err(ApiError::forbidden(format!(
                "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                resource.qualified_resource(),
                meta::meta_str(&stored.value, "name").unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Allocates a Service's IP and ports (`old` on update), claimed in the store unless `dry`.
    /// Returns what to release if the write fails.
    async fn allocate(
        &self,
        resource: &Resource,
        key: &str,
        obj: &mut Value,
        old: Option<&Value>,
        dry: bool,
    ) -> Result<Option<Holdings>> {
        if resource.kind != "Service" {
            return Ok(None);
        }
        let before = old.map(Holdings::of).unwrap_or_default();
        let granted = self
            .allocate_claimed(key, obj, dry, |alloc, obj| {
                services::allocate(alloc, key, obj, old).map_err(|errors| {
                    ApiError::invalid(
                        resource,
                        meta::meta_str(obj, "name").unwrap_or_default(),
                        &errors,
                    )
                })?;
                Ok(Holdings::of(obj).minus(&before))
            })
            .await?;
        Ok(Some(granted))
    }

    /// Turns a client's object into a new stored object: metadata, strategy, defaults, validation.
    pub fn prepare_new(
        &self,
        resource: &Resource,
        obj: &mut Value,
        namespace: Option<&str>,
    ) -> Result<()> {
        meta::check_identity(resource, obj, namespace, None)?;
        meta::generate_name(obj);
        meta::stamp_create(resource, obj);
        let custom = self.crds.served(resource);
        if custom.as_ref().is_some_and(|s| s.terminating) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        match &custom {
            // A custom resource with a status subresource starts without one, but for what
            // its schema defaults (kube-apiserver defaults again when reading it back).
            Some(served) if resource.has_status() => {
                obj.as_object_mut().map(|o| o.remove("status"));
                served.default(obj);
            }
            Some(_) => {}
            None => {
                strategy::prepare_create(resource, obj);
                kinet_admission::default_with(resource, obj, &self.admission);
                if let Some(ns) = namespace {
                    self.default_limits(resource, obj, ns);
                }
                self.admit_priority(resource, obj)?;
            }
        }
        if (resource.group, resource.kind) == ("networking.k8s.io", "Ingress") {
            self.default_ingress_class(obj);
        }
        let mut errors = kinet_admission::validate(resource, obj, None);
        errors.extend(crate::join::validate(resource, obj));
        if let Some(served) = &custom {
            errors.extend(served.validate(obj, None));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(
                resource,
                meta::meta_str(obj, "name").unwrap_or_default(),
                &errors,
            ));
        }
        self.check_namespace(resource, namespace)?;
        match namespace {
            Some(ns) => self.check_limits(resource, obj, ns),
            None => Ok(()),
        }
    }

    /// The DefaultIngressClass admission plugin, over the stored IngressClasses.
    fn default_ingress_class(&self, ingress: &mut Value) {
        let classes = kinet_types::registry::lookup("networking.k8s.io", "v1", "ingressclasses")
            .expect("ingressclasses are served");
        let (stored, _) = self.store.list(&collection_prefix(classes, None));
        let values: Vec<&Value> = stored.iter().map(|s| &s.value).collect();
        kinet_admission::default_ingress_class(ingress, &values);
    }

    /// Stores a prepared new object, allocating what it needs; AlreadyExists if the name is taken.
    pub async fn insert(
        &self,
        resource: &'static Resource,
        obj: Value,
        dry: bool,
    ) -> Result<Arc<Stored>> {
        let name = meta::meta_str(&obj, "name").unwrap_or_default().to_string();
        let key = object_key(resource, meta::meta_str(&obj, "namespace"), &name);
        let mut obj = self.to_stored(resource, obj)?;
        if self.store.get(&key).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        let admitted = self.admit_quota(resource, &obj, None, dry).await?;
        let granted = self.allocate(resource, &key, &mut obj, None, dry).await?;
        if dry {
            if let Some(g) = &granted {
                self.release_unclaimed(&key, g);
            }
            return Ok(Arc::new(Stored {
                json: serde_json::to_vec(&obj).unwrap_or_default().into(),
                value: obj,
                rv: 0,
            }));
        }
        let outcome = self
            .store
            .write(&key, move |current| match current {
                Some(_) => Err(ApiError::already_exists(resource, &name)),
                None => Ok(Mutation::Put(obj)),
            })
            .await;
        drop(admitted);
        match outcome {
            Ok(outcome) => outcome
                .object
                .ok_or_else(|| ApiError::internal("the store returned no object")),
            Err(e) => {
                if let Some(g) = &granted {
                    self.release(&key, g).await;
                }
                Err(e)
            }
        }
    }

    pub async fn create(&self, mut call: Call) -> Result<Reply> {
        let resource = call.resource();
        let body = call.body().await?;
        let (mut obj, duplicates) = parse_object(&call.content_type, &body)?;
        let custom = self.crds.served(resource);
        let warnings = decode(resource, &mut obj, &duplicates, &call, custom.as_deref())?;
        if resource.kind == "CertificateSigningRequest" {
            crate::join::stamp_requestor(&mut obj, &call.user);
        }
        self.prepare_new(resource, &mut obj, call.namespace())?;
        self.check_escalation(&call.user, resource, &obj)?;
        Api::check_node_restriction(&call.user, resource, &obj)?;
        let stored = self.insert(resource, obj, dry_run(&call)).await?;
        self.settle(resource, &stored, dry_run(&call)).await;
        Ok(with_warnings(
            self.object_reply(resource, call.format, 201, &stored),
            &warnings,
        ))
    }

    pub async fn update(&self, mut call: Call, part: Part) -> Result<Reply> {
        let resource = call.resource();
        let body = call.body().await?;
        let (mut obj, duplicates) = parse_object(&call.content_type, &body)?;
        let custom = self.crds.served(resource);
        let warnings = decode(resource, &mut obj, &duplicates, &call, custom.as_deref())?;
        meta::check_identity(resource, &mut obj, call.namespace(), Some(call.name()))?;
        let precondition = meta::resource_version(&obj);
        let stored = self
            .guaranteed_update(&call, part, precondition, |_| Ok(obj.clone()))
            .await?;
        self.settle(resource, &stored, dry_run(&call)).await;
        Ok(with_warnings(
            self.object_reply(resource, call.format, 200, &stored),
            &warnings,
        ))
    }

    pub async fn patch(&self, mut call: Call, part: Part) -> Result<Reply> {
        let resource = call.resource();
        let patch_type = PatchType::from_content_type(&call.content_type).ok_or_else(|| {
            ApiError::unsupported_media_type(
                &call.content_type,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                    "application/strategic-merge-patch+json",
                ],
            )
        })?;
        let custom = self.crds.served(resource);
        if custom.is_some() && patch_type == PatchType::Strategic {
            // Custom resources have no patch strategies, as upstream answers.
            return Err(ApiError::unsupported_media_type(
                &call.content_type,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
        let body = call.body().await?;
        if patch_type == PatchType::Apply && self.store.get(&call.key()).is_none() {
            // Server-side apply of an object that does not exist yet creates it.
            let mut obj = kinet_patch::server_side_apply(resource, None, &body)?;
            let warnings = decode(resource, &mut obj, &[], &call, custom.as_deref())?;
            meta::check_identity(resource, &mut obj, call.namespace(), Some(call.name()))?;
            if resource.kind == "CertificateSigningRequest" {
                crate::join::stamp_requestor(&mut obj, &call.user);
            }
            self.prepare_new(resource, &mut obj, call.namespace())?;
            self.check_escalation(&call.user, resource, &obj)?;
            let stored = self.insert(resource, obj, dry_run(&call)).await?;
            self.settle(resource, &stored, dry_run(&call)).await;
            return Ok(with_warnings(
                self.object_reply(resource, call.format, 201, &stored),
                &warnings,
            ));
        }
        let namespace = call.namespace().map(str::to_string);
        let name = call.name().to_string();
        let mut warnings = Vec::new();
        let stored = self
            .guaranteed_update(&call, part, None, |current| {
                let mut obj = match patch_type {
                    PatchType::Apply => {
                        kinet_patch::server_side_apply(resource, Some(current), &body)?
                    }
                    other => kinet_patch::apply_patch(resource, current, other, &body)?,
                };
                warnings = decode(resource, &mut obj, &[], &call, custom.as_deref())?;
                meta::check_identity(resource, &mut obj, namespace.as_deref(), Some(&name))?;
                // A patch may carry a resourceVersion precondition of its own.
                match meta::resource_version(&obj) {
                    Some(rv) if Some(rv) != meta::resource_version(current) => {
                        Err(ApiError::conflict(resource, &name))
                    }
                    _ => Ok(obj),
                }
            })
            .await?;
        self.settle(resource, &stored, dry_run(&call)).await;
        Ok(with_warnings(
            self.object_reply(resource, call.format, 200, &stored),
            &warnings,
        ))
    }

    /// Read, compute the new object, and write it only if nothing changed in between; a stale
    /// computation is redone unless the client gave a resourceVersion precondition. Like
    /// kube-apiserver's GuaranteedUpdate, without a cap: every lost round means another
    /// writer's update went in, and a capped retry handed busy objects' writers 409s.
    async fn guaranteed_update(
        &self,
        call: &Call,
        part: Part,
        precondition: Option<u64>,
        mut compute: impl FnMut(&Value) -> Result<Value>,
    ) -> Result<Arc<Stored>> {
        let resource = call.resource();
        let key = call.key();
        let name = call.name().to_string();
        let custom = self.crds.served(resource);
        loop {
            let current = self
                .store
                .get(&key)
                .ok_or_else(|| ApiError::not_found(resource, &name))?;
            if precondition.is_some_and(|rv| rv != current.rv) {
                return Err(ApiError::conflict(resource, &name));
            }
            let candidate = compute(&current.value)?;
            let mut new = strategy::prepare_update(resource, part, &current.value, candidate);
            meta::carry_system_fields(resource, &current.value, &mut new);
            if custom.is_none() {
                kinet_admission::default_with(resource, &mut new, &self.admission);
            }
            let mut errors = match part {
                Part::EphemeralContainers => kinet_admission::validate_ephemeral_containers_update(
                    resource,
                    &new,
                    &current.value,
                ),
                _ => kinet_admission::validate(resource, &new, Some(&current.value)),
            };
            if let Some(served) = &custom {
                errors.extend(served.validate(&new, Some(&current.value)));
            }
            if !errors.is_empty() {
                return Err(ApiError::invalid(resource, &name, &errors));
            }
            self.check_escalation(&call.user, resource, &new)?;
            let mut new = self.to_stored(resource, new)?;
            if meta::same_content(&new, &current.value) {
                return Ok(current);
            }
            let (admitted, granted) = match part {
                Part::Main => {
                    let (old, dry) = (Some(&current.value), dry_run(call));
                    let admitted = self.admit_quota(resource, &new, old, dry).await?;
                    let granted = self.allocate(resource, &key, &mut new, old, dry).await?;
                    (admitted, granted)
                }
                Part::Status | Part::EphemeralContainers | Part::Approval => (None, None),
            };
            let finished = finalized(resource, &current.value, &new);
            if dry_run(call) {
                if let Some(g) = &granted {
                    self.release_unclaimed(&key, g);
                }
                return Ok(Arc::new(Stored {
                    json: serde_json::to_vec(&new).unwrap_or_default().into(),
                    value: new,
                    rv: current.rv,
                }));
            }
            let expected = current.rv;
            let conflict_name = name.clone();
            let result = self
                .store
                .write(&key, move |now| match now {
                    None => Err(ApiError::not_found(resource, &conflict_name)),
                    Some(now) if meta::resource_version(now) != Some(expected) => {
                        Err(ApiError::conflict(resource, &conflict_name))
                    }
                    Some(_) if finished => Ok(Mutation::Delete),
                    Some(_) => Ok(Mutation::Put(new)),
                })
                .await;
            drop(admitted);
            match result {
                Ok(outcome) => {
                    let stored = outcome
                        .object
                        .ok_or_else(|| ApiError::internal("the store returned no object"))?;
                    if resource.kind == "Service" {
                        let after = if finished {
                            Holdings::default()
                        } else {
                            Holdings::of(&stored.value)
                        };
                        self.release(&key, &Holdings::of(&current.value).minus(&after))
                            .await;
                    }
                    return Ok(stored);
                }
                Err(e) => {
                    if let Some(g) = &granted {
                        self.release(&key, g).await;
                    }
                    if e.reason == "Conflict" && precondition.is_none() {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// An update that removes the last finalizer of an object already being deleted (with no grace
/// period left) deletes it, as kube-apiserver's store does. Namespaces are finished by their own
/// DELETE once emptied, never by an update.
fn finalized(resource: &Resource, old: &Value, new: &Value) -> bool {
    let has_finalizers = |v: &Value| {
        meta::metadata(v)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    };
    let deleting = meta::metadata(old).is_some_and(|m| {
        m.get("deletionTimestamp").is_some_and(|t| !t.is_null())
            && m.get("deletionGracePeriodSeconds").and_then(Value::as_i64) == Some(0)
    });
    resource.kind != "Namespace" && deleting && has_finalizers(old) && !has_finalizers(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalizer_removal_completes_deletion() {
        let cm = kinet_types::registry::lookup("", "v1", "configmaps").unwrap();
        let ns = kinet_types::registry::lookup("", "v1", "namespaces").unwrap();
        let old = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0, "finalizers": ["x"]}});
        assert!(finalized(
            cm,
            &old,
            &json!({"metadata": {"finalizers": []}})
        ));
        assert!(!finalized(
            cm,
            &old,
            &json!({"metadata": {"finalizers": ["x"]}})
        ));
        assert!(!finalized(
            cm,
            &json!({"metadata": {}}),
            &json!({"metadata": {}})
        ));
        // A terminating namespace (no metadata finalizers) survives status and label updates.
        let terminating = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0}});
        assert!(!finalized(ns, &terminating, &terminating));
        assert!(!finalized(cm, &terminating, &terminating));
    }

    #[test]
    fn media_types() {
        assert!(parse_object("application/json; charset=utf-8", b"{}").is_ok());
        assert_eq!(
            parse_object("application/yaml", b"kind: Pod\nspec: {}\n")
                .unwrap()
                .0,
            json!({"kind": "Pod", "spec": {}})
        );
        assert_eq!(
            parse_object("application/json", br#"{"a": 1, "a": 2}"#).unwrap(),
            (json!({"a": 2}), vec!["a".to_string()])
        );
        assert_eq!(
            parse_object("application/json", b"{").unwrap_err().code,
            400
        );
        assert_eq!(
            parse_object("application/vnd.kubernetes.protobuf", b"{}")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(parse_object("application/cbor", b"").unwrap_err().code, 415);
    }
}
