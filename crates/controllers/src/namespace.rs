//! The namespace controller: a Namespace with a deletionTimestamp is emptied (every namespaced
//! resource discovery lists, custom resources included, listed and deleted), then finalized
//! and deleted, so `kubectl delete ns` returns.
//!
//! Pods on a node terminate gracefully; if no node agent removes one by the end of its grace
//! period, it is deleted with grace 0, as upstream's controller does once the kubelet is gone.
//! Objects held by finalizers (the garbage collector's) are waited for, not forced.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::runtime::run_controller;

/// Every namespaced resource the API server serves that can be listed and deleted, custom
/// resources included, read from discovery as upstream's namespace controller does.
async fn namespaced_kinds(client: &Client) -> Result<Vec<ApiResource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    Ok(discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
        })
        .map(|(ar, _)| ar)
        .collect())
}

/// What the controller knows of one object in a terminating namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    /// `metadata.deletionTimestamp`: for a terminating pod, the end of its grace period.
    pub deletion: Option<Timestamp>,
    pub grace: Option<i64>,
}

/// How to delete an item now, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not yet marked: an ordinary delete.
    Delete,
    /// Marked, grace period over and still here: delete with grace 0.
    Force,
    /// Marked and within its grace period, or held by finalizers: wait.
    Wait,
}

const SLACK: std::time::Duration = std::time::Duration::from_secs(1);

/// The step for one item at `now`.
pub fn step(item: &Item, now: Timestamp) -> Step {
    match item.deletion {
        None => Step::Delete,
        // Timestamps are stored to the second, so a deadline may read up to 1 s early.
        Some(deadline) if item.grace.unwrap_or(0) > 0 && now >= deadline + SLACK => Step::Force,
        Some(_) => Step::Wait,
    }
}

/// How long a discovered list of kinds is reused: a terminating namespace is looked at again
/// every 200 ms, and discovery is a request per API group.
const DISCOVERY_TTL: Duration = Duration::from_secs(10);

struct Ctx {
    client: Client,
    kinds: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<ApiResource>>)>>,
}

impl Ctx {
    /// The namespaced kinds, from discovery at most every [`DISCOVERY_TTL`].
    async fn kinds(&self) -> Result<Arc<Vec<ApiResource>>, kube::Error> {
        let mut cached = self.kinds.lock().await;
        if let Some((_, kinds)) = cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < DISCOVERY_TTL)
        {
            return Ok(kinds.clone());
        }
        let kinds = Arc::new(namespaced_kinds(&self.client).await?);
        *cached = Some((std::time::Instant::now(), kinds.clone()));
        Ok(kinds)
    }
}

/// Runs the loop.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Ctx {
        client,
        kinds: tokio::sync::Mutex::new(None),
    });
    let controller = Controller::new(namespaces, watcher::Config::default());
    run_controller(
        "namespace",
        controller,
        reconcile,
        ctx,
        Duration::from_secs(1),
    )
    .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let now = Timestamp::now();
    let mut remaining = 0;
    for ar in ctx.kinds().await?.iter() {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, ar);
        for obj in api.list(&ListParams::default()).await?.items {
            remaining += 1;
            let item = Item {
                name: obj.name_any(),
                deletion: obj.metadata.deletion_timestamp.as_ref().map(|t| t.0),
                grace: obj.metadata.deletion_grace_period_seconds,
            };
            let params = match step(&item, now) {
                Step::Wait => continue,
                Step::Delete => DeleteParams::default(),
                Step::Force => DeleteParams::default().grace_period(0),
            };
            match api.delete(&item.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    // No status conditions: kinet's API server deletes a Terminating namespace on any update
    // (write.rs `finalized` takes its empty metadata.finalizers for "last finalizer removed").
    if remaining > 0 {
        // Deletions and finalizers settle within moments; look again soon.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    // Recheck emptiness right before finalizing: nothing can be created in a Terminating namespace.
    if ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| !f.is_empty())
    {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {"finalizers": []}});
        namespaces
            .replace_subresource("finalize", &name, &PostParams::default(), &body)
            .await?;
    }
    match namespaces.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let item = |deletion, grace| Item {
            name: "x".into(),
            deletion,
            grace,
        };
        let cases = [
            ("live object", item(None, None), Step::Delete),
            (
                "pod within its grace period",
                item(at("2026-01-01T00:00:40Z"), Some(30)),
                Step::Wait,
            ),
            (
                "pod at the (truncated) end of its grace period",
                item(at("2026-01-01T00:00:30Z"), Some(30)),
                Step::Wait,
            ),
            (
                "pod past its grace period",
                item(at("2026-01-01T00:00:29Z"), Some(30)),
                Step::Force,
            ),
            (
                "held by finalizers (grace 0)",
                item(at("2026-01-01T00:00:00Z"), Some(0)),
                Step::Wait,
            ),
        ];
        for (name, item, want) in cases {
            assert_eq!(step(&item, now), want, "{name}");
        }
    }
}
