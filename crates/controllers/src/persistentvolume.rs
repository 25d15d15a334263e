//! The persistent-volume controller's part that kinet can play without storage: a claim stays
//! Pending, and says why in an Event every sync as kube-controller-manager's does, so
//! `kubectl describe pvc` tells the user instead of leaving them guessing.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};

use crate::events::{object_ref, EventType};
use crate::runtime::{run_controller, Ctx};

/// kube-controller-manager's claim sync period.
const SYNC: Duration = Duration::from_secs(15);

/// The Event a Pending claim gets: type, reason and message, in the upstream controller's words.
pub fn pending_event(claim: &PersistentVolumeClaim) -> Option<(EventType, &'static str, String)> {
    let pending = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Pending");
    if !pending || claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let class = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    Some(match class.filter(|c| !c.is_empty()) {
        // No StorageClass exists in kinet, so a named one is never found.
        Some(c) => (
            EventType::Warning,
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io {c:?} not found"),
        ),
        None => (
            EventType::Normal,
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        ),
    })
}

/// Runs the loop.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let controller = Controller::new(claims, watcher::Config::default());
    let ctx = Ctx::new(&client, "persistentvolume-controller");
    run_controller("persistentvolume", controller, reconcile, ctx, SYNC).await;
    Ok(())
}

async fn reconcile(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    let Some((type_, reason, message)) = pending_event(&claim) else {
        return Ok(Action::await_change());
    };
    ctx.recorder
        .publish(&object_ref(claim.as_ref()), type_, reason, &message)
        .await;
    Ok(Action::requeue(SYNC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(v: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pending_claim_says_why_it_stays_pending() {
        let plain = claim(
            json!({"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}),
        );
        let (t, reason, message) = pending_event(&plain).unwrap();
        assert_eq!((t, reason), (EventType::Normal, "FailedBinding"));
        assert_eq!(
            message,
            "no persistent volumes available for this claim and no storage class is set"
        );
        let classed =
            claim(json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"}}));
        let (t, reason, message) = pending_event(&classed).unwrap();
        assert_eq!((t, reason), (EventType::Warning, "ProvisioningFailed"));
        assert_eq!(message, "storageclass.storage.k8s.io \"fast\" not found");
        let bound =
            claim(json!({"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Bound"}}));
        assert!(pending_event(&bound).is_none());
    }
}
