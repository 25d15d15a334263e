//! A container's image, as the kubelet's image manager gets it: pull policy, pull with
//! the pod's `imagePullSecrets`, back-off, and the events and waiting reasons
//! (`InvalidImageName`, `ErrImageNeverPull`, `ErrImagePull`, `ImagePullBackOff`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kinet_controllers::events::EventType;
use kinet_oci_store::{Credentials, PullOptions, Resolved};
use kube::Api;
use tokio::time::Instant;

use super::{Worker, RETRY};
use crate::pods::image::{self, messages, Action, Backoff};

/// Store reads touch the disk: off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, kinet_oci_store::Error> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("reading the image store: {e}")),
    }
}

impl Worker {
    /// The credentials of the pod's `imagePullSecrets`; a secret that cannot be read gets
    /// the kubelet's warning and is skipped.
    async fn pull_credentials(&self) -> Credentials {
        let mut creds = Credentials::default();
        let names = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.rt.client.clone(), &self.rec.namespace);
        let mut missing = Vec::new();
        for name in names.into_iter().map(|r| r.name) {
            let config = api.get_opt(&name).await.ok().flatten().and_then(|s| {
                s.data?
                    .get(".dockerconfigjson")
                    .map(|b| creds.add_docker_config(&b.0))
            });
            if !matches!(config, Some(Ok(()))) {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            let msg = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            self.event(EventType::Warning, "FailedToRetrieveImagePullSecret", &msg)
                .await;
        }
        creds
    }

    /// Waits with `reason` (the kubelet's `Error: <reason>` event too) until `due`.
    async fn image_error(&mut self, idx: usize, reason: &str, message: String, due: Instant) {
        self.waiting(idx, reason, Some(message));
        self.event(EventType::Warning, "Failed", &format!("Error: {reason}"))
            .await;
        self.slots[idx].due = Some(due);
    }

    /// The container's image from the store, pulled first if its policy says so; `None`
    /// when the container has to wait (its state and next attempt are set).
    pub(super) async fn ensure_image(&mut self, idx: usize) -> Option<Resolved> {
        let spec = self.slots[idx].spec.clone();
        let image = spec.image.clone().unwrap_or_default();
        let retry = Instant::now() + RETRY;
        if let Err(e) = kinet_oci_store::normalize(&image) {
            let msg = messages::invalid(&image, &e.to_string());
            self.event(EventType::Warning, "InspectFailed", &msg).await;
            self.image_error(idx, "InvalidImageName", msg, retry).await;
            return None;
        }
        let rt = self.rt.clone();
        let store = match rt.store() {
            Ok(s) => s,
            Err(e) => {
                self.image_error(idx, "ErrImagePull", e.to_string(), retry)
                    .await;
                return None;
            }
        };
        let present = {
            let (store, image) = (store.clone(), image.clone());
            blocking(move || store.resolve(&image)).await.ok().flatten()
        };
        match image::action(image::policy(&spec), present.is_some()) {
            Action::Use => {
                self.event(EventType::Normal, "Pulled", &messages::present(&image))
                    .await;
                return present;
            }
            Action::Refuse => {
                let msg = messages::never_pull(&image);
                self.event(EventType::Warning, "ErrImageNeverPull", &msg)
                    .await;
                self.image_error(idx, "ErrImageNeverPull", msg, retry).await;
                return None;
            }
            Action::Pull => {}
        }
        let key = Backoff::key(&self.rec.uid, &image);
        if let Some((until, error)) = self.pulls.until(&key, Instant::now()) {
            let msg = messages::back_off(&image);
            let waiting = format!("{msg}: ErrImagePull: {error}");
            self.event(EventType::Normal, "BackOff", &msg).await;
            self.image_error(idx, "ImagePullBackOff", waiting, until)
                .await;
            return None;
        }
        self.event(EventType::Normal, "Pulling", &messages::pulling(&image))
            .await;
        let opts = PullOptions {
            credentials: self.pull_credentials().await,
            settings: self.rt.cfg.registries.clone(),
            ..PullOptions::default()
        };
        // As the kubelet reports it: the pull itself, and the whole wait for the image from
        // the pull's start until it resolves in the store.
        let started = Instant::now();
        let mut took = Duration::ZERO;
        let pulled = match image::pull(&self.rt.cfg.exe, &image, &opts).await {
            Ok(record) => {
                took = started.elapsed();
                let (name, store) = (record.name.clone(), store.clone());
                blocking(move || store.resolve_record(record))
                    .await
                    .and_then(|r| r.ok_or_else(|| format!("{name:?} vanished from the store")))
            }
            Err(e) => Err(e),
        };
        match pulled {
            Ok(resolved) => {
                self.pulls.succeeded(&key);
                let size = resolved.record.size();
                let msg = messages::pulled(&image, took, started.elapsed(), size);
                self.event(EventType::Normal, "Pulled", &msg).await;
                Some(resolved)
            }
            Err(e) => {
                self.pulls.failed(&key, Instant::now(), e.clone());
                let msg = messages::failed(&image, &e);
                self.event(EventType::Warning, "Failed", &msg).await;
                // The next sync finds the back-off and says so.
                self.image_error(idx, "ErrImagePull", e, retry).await;
                None
            }
        }
    }
}
