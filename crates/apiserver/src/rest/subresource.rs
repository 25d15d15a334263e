//! Subresources other than status: `scale` (autoscaling/v1 Scale over a workload's replicas),
//! pod `binding` and `eviction` ([`super::eviction`]), namespace `finalize`, and the streaming pod subresources, which belong to the
//! node agent of the pod's node.

use http::Method;
use kinet_patch::PatchType;
use kinet_store::Mutation;
use kinet_types::registry::{lookup, Resource};
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::{meta, Api, Call};
use crate::http::{json_reply, Reply};
use crate::nodeproxy;
use kinet_crd::definition::ScalePaths;

/// The Scale view of a Deployment or ReplicaSet, or of a custom resource through its
/// definition's replica and selector paths (`custom`).
fn scale_of(obj: &Value, custom: Option<&ScalePaths>) -> Value {
    let at = |path: &str| {
        kinet_crd::columns::find(obj, path)
            .first()
            .copied()
            .cloned()
    };
    let (spec, status, selector) = match custom {
        Some(paths) => (
            at(&paths.spec_replicas),
            at(&paths.status_replicas),
            paths
                .label_selector
                .as_deref()
                .and_then(at)
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        None => (
            Some(obj["spec"]["replicas"].clone()),
            Some(obj["status"]["replicas"].clone()),
            kinet_selectors::LabelSelector::from_label_selector(&obj["spec"]["selector"])
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
    };
    let default_spec = if custom.is_some() { 0 } else { 1 };
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": spec.and_then(|v| v.as_i64()).unwrap_or(default_spec)},
        "status": {"replicas": status.and_then(|v| v.as_i64()).unwrap_or(0), "selector": selector},
    })
}

impl Api {
    pub async fn subresource(&self, mut call: Call, method: Method) -> Result<Reply> {
        let resource = call.resource();
        let sub = call.target.subresource.clone().unwrap_or_default();
        match (sub.as_str(), method) {
            ("scale", Method::GET) => {
                let stored = self
                    .store
                    .get(&call.key())
                    .ok_or_else(|| ApiError::not_found(resource, call.name()))?;
                let custom = self.scale_paths(resource);
                Ok(json_reply(200, &scale_of(&stored.value, custom.as_ref())))
            }
            ("scale", Method::PUT | Method::PATCH) => {
                let body = call.body().await?;
                let patch_type = PatchType::from_content_type(&call.content_type);
                self.scale(&call, patch_type, &body).await
            }
            ("binding", Method::POST) => {
                let body = call.body().await?;
                self.bind(&call, &body).await
            }
            ("eviction", Method::POST) if resource.kind == "Pod" => {
                let body = call.body().await?;
                self.evict(&call, &body).await
            }
            ("finalize", Method::PUT) => {
                let body = call.body().await?;
                self.finalize_namespace(&call, &body).await
            }
            ("log" | "exec" | "attach" | "portforward", method) => {
                self.node_stream(call, sub, method).await
            }
            ("token", Method::POST) if crate::tokenrequest::serves(resource, "token") => {
                self.create_token(&mut call).await
            }
            (_, method) => Err(ApiError::method_not_allowed(
                method.as_str(),
                &format!("{}/{sub}", resource.plural),
            )),
        }
    }

    async fn scale(
        &self,
        call: &Call,
        patch_type: Option<PatchType>,
        body: &[u8],
    ) -> Result<Reply> {
        let resource = call.resource();
        let key = call.key();
        let name = call.name().to_string();
        let current = self
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(resource, &name))?;
        let custom = self.scale_paths(resource);
        let scale = scale_of(&current.value, custom.as_ref());
        let wanted = match patch_type {
            // PUT carries a whole Scale; PATCH patches the Scale view.
            None => serde_json::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            Some(PatchType::Apply) => {
                return Err(ApiError::unsupported_media_type(
                    "application/apply-patch+yaml",
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                    ],
                ))
            }
            Some(t) => kinet_patch::apply_patch(scale_resource(), &scale, t, body)?,
        };
        let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                scale_resource(),
                &name,
                &[kinet_types::FieldError::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        if let Some(rv) = wanted["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse::<u64>().ok())
        {
            if rv != current.rv {
                return Err(ApiError::conflict(resource, &name));
            }
        }
        let mut updated = current.value.clone();
        let spec_path = custom
            .as_ref()
            .map_or(".spec.replicas", |p| &p.spec_replicas);
        set_path(&mut updated, spec_path, json!(replicas));
        meta::carry_system_fields(resource, &current.value, &mut updated);
        let updated = self.to_stored(resource, updated)?;
        let expected = current.rv;
        let outcome = self
            .store
            .write(&key, move |now| match now {
                Some(now) if meta::resource_version(now) == Some(expected) => {
                    Ok(Mutation::Put(updated))
                }
                Some(_) => Err(ApiError::conflict(resource, &name)),
                None => Err(ApiError::not_found(resource, &name)),
            })
            .await?;
        let stored = outcome
            .object
            .ok_or_else(|| ApiError::internal("no object"))?;
        Ok(json_reply(200, &scale_of(&stored.value, custom.as_ref())))
    }

    /// A custom resource's scale paths; None for built-ins.
    fn scale_paths(&self, resource: &Resource) -> Option<ScalePaths> {
        self.crds.served(resource)?.version.scale.clone()
    }

    async fn bind(&self, call: &Call, body: &[u8]) -> Result<Reply> {
        let resource = call.resource();
        let binding: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::invalid(
                    binding_resource(),
                    call.name(),
                    &[kinet_types::FieldError::required("target.name", "")],
                )
            })?;
        let name = call.name().to_string();
        let outcome = self
            .store
            .write(&call.key(), move |current| {
                let Some(pod) = current else { return Err(ApiError::not_found(resource, &name)) };
                if pod["metadata"]["deletionTimestamp"].is_string() {
                    return Err(ApiError::conflict(resource, &name));
                }
                if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    return Err(ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on pods/binding {name:?}: pod {name} is already assigned to node {bound:?}"
                    )));
                }
                let mut pod = pod.clone();
                pod["spec"]["nodeName"] = json!(node);
                let mut conditions: Vec<Value> = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
                conditions.retain(|c| c["type"] != "PodScheduled");
                conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()}));
                pod["status"]["conditions"] = json!(conditions);
                Ok(Mutation::Put(super::stored_form(resource, pod)?))
            })
            .await?;
        let _ = outcome;
        Ok(json_reply(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    async fn finalize_namespace(&self, call: &Call, body: &[u8]) -> Result<Reply> {
        let resource = call.resource();
        let wanted: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let finalizers = wanted["spec"]["finalizers"].clone();
        // A finalizer list that is not one of strings is refused as Go's decoder refuses it.
        let wrong = match &finalizers {
            Value::Null => None,
            Value::Array(items) => items
                .iter()
                .find(|f| !f.is_string())
                .map(|f| (f, "v1.FinalizerName")),
            other => Some((other, "[]v1.FinalizerName")),
        };
        if let Some((value, go_type)) = wrong {
            return Err(ApiError::bad_request(format!(
                "Namespace in version \"v1\" cannot be handled as a Namespace: json: cannot unmarshal {} into Go struct field NamespaceSpec.spec.finalizers of type {go_type}",
                kinet_patch::decode::go_type_name(value)
            )));
        }
        let name = call.name().to_string();
        let outcome = self
            .store
            .write(&call.key(), move |current| {
                let Some(ns) = current else {
                    return Err(ApiError::not_found(resource, &name));
                };
                let mut ns = ns.clone();
                ns["spec"]["finalizers"] = if finalizers.is_null() {
                    json!([])
                } else {
                    finalizers
                };
                Ok(Mutation::Put(super::stored_form(resource, ns)?))
            })
            .await?;
        let stored = outcome
            .object
            .ok_or_else(|| ApiError::internal("no object"))?;
        Ok(json_reply(200, &stored.value))
    }

    /// log, exec, attach and port-forward are served by the node agent of the pod's node:
    /// check the pod and container here, then proxy (see [`crate::nodeproxy`]).
    async fn node_stream(&self, call: Call, sub: String, method: Method) -> Result<Reply> {
        let resource = call.resource();
        let pod = self
            .store
            .get(&call.key())
            .ok_or_else(|| ApiError::not_found(resource, call.name()))?;
        let pod = &pod.value;
        let container = match sub.as_str() {
            "portforward" => None,
            _ => Some(nodeproxy::pick_container(pod, call.query.get("container"))?),
        };
        let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty());
        let Some(node) = node else {
            // kube-apiserver answers an unscheduled pod's log with an empty body.
            if sub == "log" {
                return Ok(crate::http::bytes_reply(200, "text/plain", ""));
            }
            return Err(ApiError::bad_request(format!(
                "pod {} does not have a host assigned",
                call.name()
            )));
        };
        let nodes = lookup("", "v1", "nodes").expect("nodes are served");
        let node_obj = self
            .store
            .get(&super::object_key(nodes, None, node))
            .ok_or_else(|| ApiError::not_found(nodes, node))?;
        let (host, port) = nodeproxy::node_endpoint(&node_obj.value)?;
        let tls = self.kubelet.get().cloned().ok_or_else(|| {
            ApiError::new(
                500,
                "",
                "error dialing backend: the API server has no kubelet client certificate",
            )
        })?;
        let path = nodeproxy::kubelet_path(
            &sub,
            call.namespace().unwrap_or("default"),
            call.name(),
            container.as_deref(),
            call.uri.query(),
        );
        let forward = nodeproxy::Forward {
            tls,
            host: &host,
            port,
            // Upgrades go on with the client's method (POST from SPDY kubectl, GET for websockets).
            method: if sub == "log" { Method::GET } else { method },
            path,
            headers: &call.headers,
        };
        if sub == "log" {
            forward.log().await
        } else {
            forward.upgrade(call.upgrade).await
        }
    }
}

fn scale_resource() -> &'static Resource {
    static SCALE: Resource = Resource {
        group: "autoscaling",
        version: "v1",
        kind: "Scale",
        plural: "scales",
        singular: "scale",
        short_names: &[],
        scope: kinet_types::registry::Scope::Namespaced,
        categories: &[],
        subresources: &[],
    };
    &SCALE
}

fn binding_resource() -> &'static Resource {
    lookup("", "v1", "pods").expect("pods are served")
}

/// Sets the field at a simple `.a.b.c` path, making the objects on the way.
fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut at = obj;
    let fields: Vec<&str> = path.split('.').filter(|f| !f.is_empty()).collect();
    for (i, field) in fields.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        if i + 1 == fields.len() {
            at[*field] = value;
            return;
        }
        at = &mut at[*field];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d, None);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn custom_scale_follows_the_definition_paths() {
        let paths = ScalePaths {
            spec_replicas: ".spec.size".into(),
            status_replicas: ".status.ready".into(),
            label_selector: Some(".status.selector".into()),
        };
        let mut w = json!({"metadata": {"name": "w"}, "spec": {"size": 4}, "status": {"ready": 1, "selector": "app=w"}});
        let s = scale_of(&w, Some(&paths));
        assert_eq!(
            (
                s["spec"]["replicas"].as_i64(),
                s["status"]["replicas"].as_i64()
            ),
            (Some(4), Some(1))
        );
        assert_eq!(s["status"]["selector"], "app=w");
        set_path(&mut w, ".spec.size", json!(6));
        set_path(&mut w, ".spec.deep.replicas", json!(2));
        assert_eq!(w["spec"], json!({"size": 6, "deep": {"replicas": 2}}));
    }
}
