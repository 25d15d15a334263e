//! The serviceaccounts controller: every Active namespace has a ServiceAccount `default`,
//! recreated if someone deletes it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};

use crate::runtime::run_controller;

const DEFAULT: &str = "default";

struct Ctx {
    client: Client,
}

/// Whether `ns` should hold a `default` account: it is live (not Terminating).
pub fn wants_default(ns: &Namespace) -> bool {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    !terminating
}

/// Runs the loop.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    // Only the `default` account matters; its namespace is the key to reconcile.
    let by_namespace = |sa: ServiceAccount| {
        (sa.name_any() == DEFAULT)
            .then(|| sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns)))
            .flatten()
    };
    let controller = Controller::new(namespaces, watcher::Config::default()).watches(
        accounts,
        watcher::Config::default(),
        by_namespace,
    );
    let ctx = Arc::new(Ctx { client });
    run_controller(
        "serviceaccounts",
        controller,
        reconcile,
        ctx,
        Duration::from_secs(1),
    )
    .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    if !wants_default(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    if api.get_opt(DEFAULT).await?.is_some() {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => {}
        // Another writer won, or the namespace started terminating: both are fine.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn only_live_namespaces_want_a_default_account() {
        let active = Namespace {
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut deleting = active.clone();
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let terminating = Namespace {
            status: Some(NamespaceStatus {
                phase: Some("Terminating".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        for (ns, want) in [
            (&active, true),
            (&Namespace::default(), true),
            (&deleting, false),
            (&terminating, false),
        ] {
            assert_eq!(wants_default(ns), want, "{ns:?}");
        }
    }
}
