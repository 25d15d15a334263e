//! The REST layer: every resource request lands in [`Api::handle`], which dispatches on the verb
//! (kube-apiserver's RequestInfo verbs) to the read, write, watch and subresource handlers.

mod alloc;
mod claims;
mod delete;
mod eviction;
pub(crate) mod meta;
mod rbac;
mod read;
mod services;
mod strategy;
mod subresource;
mod watch;
mod write;
pub(crate) use write::parse_object;

use std::sync::{Arc, Mutex};

use http::{header, Method, Request};
use hyper::body::Incoming;
use kinet_store::Store;
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};

use crate::http::{error_reply, Query, Reply};
use crate::path::Target;
use crate::TokenUser;

pub use alloc::{Allocators, NetworkConfig};
pub use services::Holdings;
pub(crate) use write::stored_form;

/// Shared state of the API server.
pub struct Api {
    pub store: Store,
    pub tokens: Vec<TokenUser>,
    /// The admission plugins' settings.
    pub admission: kinet_admission::Settings,
    /// What `/metrics` serves.
    pub metrics: Option<crate::MetricsText>,
    /// `host:port` advertised in legacy discovery.
    pub server_address: String,
    pub network: NetworkConfig,
    /// ClusterIP and NodePort allocation, rebuilt from stored Services at start; the claims
    /// in the store keep several servers apart.
    pub alloc: Mutex<Allocators>,
    /// TLS to node agents with the kubelet client certificate; unset: streaming subresources
    /// (log, exec, attach, portforward) cannot reach nodes.
    pub kubelet: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    /// The cluster CA's PEM, served at `/cacerts`.
    pub ca_pem: String,
    /// Signs and verifies service-account tokens (`serviceaccounts/token`).
    pub sa_tokens: crate::tokenrequest::TokenIssuer,
    /// What `/livez`, `/readyz` and `/healthz` check.
    pub health: kinet_health::Checks,
    /// The resources CustomResourceDefinitions serve.
    pub crds: crate::crds::Registry,
    /// Quota charges share their namespace's lock until their object is stored; a recount of
    /// the namespace's usage holds it alone.
    pub quota_locks: crate::quota::QuotaLocks,
    /// Decides every request; caches the RBAC graph.
    pub authz: crate::authz::Authorizer,
}

/// The response representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Table,
}

impl Format {
    fn from_accept(accept: &str) -> Result<Format> {
        if accept.contains("as=Table") {
            return Ok(Format::Table);
        }
        let acceptable = accept.is_empty()
            || accept.split(',').any(|part| {
                let media = part.split(';').next().unwrap_or("").trim();
                matches!(media, "application/json" | "*/*" | "application/*" | "")
            });
        if acceptable {
            Ok(Format::Json)
        } else {
            Err(ApiError::new(
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json",
            ))
        }
    }
}

/// The storage key of one object.
pub fn object_key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if resource.namespaced() => format!("{}/{ns}/{name}", resource.key_prefix()),
        _ => format!("{}/{name}", resource.key_prefix()),
    }
}

/// The storage prefix of a collection (all namespaces when `namespace` is None).
pub fn collection_prefix(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced() => format!("{}/{ns}/", resource.key_prefix()),
        _ => format!("{}/", resource.key_prefix()),
    }
}

/// One request, decoded as far as every handler needs.
pub struct Call {
    pub target: Target,
    pub query: Query,
    pub format: Format,
    pub content_type: String,
    /// Who asks (after impersonation): the escalation checks of RBAC writes and a CSR's
    /// requestor need it.
    pub user: kinet_rbac::UserInfo,
    pub body: Option<Incoming>,
    /// The request's URI and headers, and its upgrade (exec, attach and port-forward are
    /// proxied to the node agent as upgrades).
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Call {
    pub fn resource(&self) -> &'static Resource {
        self.target.resource
    }

    pub fn namespace(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    pub fn key(&self) -> String {
        object_key(self.resource(), self.namespace(), self.name())
    }

    pub async fn body(&mut self) -> Result<bytes::Bytes> {
        match self.body.take() {
            Some(body) => crate::http::read_body(body).await,
            None => Ok(bytes::Bytes::new()),
        }
    }
}

impl Api {
    /// Writes `status` into the object at `key` only if it is still at revision `rv`, the one
    /// the status was computed from (a newer revision gets its own turn), as the API server's
    /// own controllers do.
    pub(crate) async fn write_status_over(
        &self,
        key: &str,
        rv: u64,
        status: serde_json::Value,
    ) -> Result<()> {
        self.store
            .write(key, move |current| match current {
                Some(c) if meta::resource_version(c) == Some(rv) => {
                    let mut next = c.clone();
                    next["status"] = status;
                    Ok(kinet_store::Mutation::Put(next))
                }
                _ => Ok(kinet_store::Mutation::Unchanged),
            })
            .await
            .map(drop)
    }

    pub async fn handle(
        self: &Arc<Self>,
        user: &kinet_rbac::UserInfo,
        target: Target,
        query: Query,
        req: Request<Incoming>,
    ) -> Reply {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let accept = header(header::ACCEPT);
        let content_type = header(header::CONTENT_TYPE);
        let method = req.method().clone();
        let rbac_write = target.resource.group == kinet_rbac::GROUP && method != Method::GET;
        let format = match Format::from_accept(&accept) {
            Ok(f) => f,
            Err(e) => return error_reply(&e),
        };
        let (mut parts, body) = req.into_parts();
        let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let call = Call {
            target,
            query,
            format,
            content_type,
            user: user.clone(),
            body: Some(body),
            uri: parts.uri,
            headers: parts.headers,
            upgrade,
        };
        let reply = self.dispatch(method, call).await;
        // Only a write that went in changes the graph; a refused one leaves it as it was.
        if rbac_write && reply.is_ok() {
            self.rbac_changed().await;
        }
        match reply {
            Ok(reply) => reply,
            Err(e) => error_reply(&e),
        }
    }

    async fn dispatch(self: &Arc<Self>, method: Method, call: Call) -> Result<Reply> {
        let has_name = call.target.name.is_some();
        let sub = call.target.subresource.clone();
        let watch = call.target.watch_prefix || call.query.flag("watch");
        // A read without a resourceVersion wants the latest state (kube-apiserver's quorum read):
        // the cache first catches up with what other API servers on the same etcd committed.
        let latest = call.query.get("resourceVersion").is_none_or(str::is_empty)
            && call.query.get("continue").is_none();
        if method == Method::GET && !watch && latest {
            self.store.sync().await?;
        }
        match (method, has_name, sub.as_deref()) {
            (Method::GET, false, None) if watch => self.watch(call).await,
            (Method::GET, true, None) if watch => self.watch(call).await,
            (Method::GET, false, None) => self.list(&call),
            (Method::POST, false, None) => self.create(call).await,
            (Method::DELETE, false, None) => self.delete_collection(call).await,
            (Method::GET, true, None | Some("status")) => self.get(&call),
            (Method::GET, true, Some("ephemeralcontainers")) if is_pod(&call) => self.get(&call),
            (Method::PUT, true, Some("ephemeralcontainers")) if is_pod(&call) => {
                self.update(call, strategy::Part::EphemeralContainers).await
            }
            (Method::PATCH, true, Some("ephemeralcontainers")) if is_pod(&call) => {
                self.patch(call, strategy::Part::EphemeralContainers).await
            }
            (Method::PUT, true, None) => self.update(call, strategy::Part::Main).await,
            (Method::PUT, true, Some("status")) => self.update(call, strategy::Part::Status).await,
            (Method::PATCH, true, None) => self.patch(call, strategy::Part::Main).await,
            (Method::PATCH, true, Some("status")) => self.patch(call, strategy::Part::Status).await,
            (Method::GET, true, Some("approval")) if is_csr(&call) => self.get(&call),
            (Method::PUT, true, Some("approval")) if is_csr(&call) => {
                self.update(call, strategy::Part::Approval).await
            }
            (Method::PATCH, true, Some("approval")) if is_csr(&call) => {
                self.patch(call, strategy::Part::Approval).await
            }
            (Method::DELETE, true, None) => self.delete(call).await,
            (method, true, Some(_)) => self.subresource(call, method).await,
            (method, _, _) => Err(ApiError::method_not_allowed(
                method.as_str(),
                call.resource().kind,
            )),
        }
    }
}

fn is_csr(call: &Call) -> bool {
    call.resource().kind == "CertificateSigningRequest"
}

fn is_pod(call: &Call) -> bool {
    let r = call.resource();
    (r.group, r.kind) == ("", "Pod")
}
