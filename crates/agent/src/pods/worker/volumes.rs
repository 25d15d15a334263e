//! The pod's volumes, set up before its sandbox as the kubelet's volume manager does, and
//! set up again when an object they project changes (the node's watch tells), when the
//! pod's labels or annotations change (downwardAPI), and every [`VOLUME_SYNC`] (tokens).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kinet_controllers::events::EventType;
use kube::Api;
use tokio::time::Instant;

use super::Worker;
use crate::pods::env;
use crate::pods::objects::Changed;
use crate::pods::volumes::{self, Mountable, Sources};

/// How often volumes are refreshed without a change being heard (the kubelet's sync period).
pub(super) const VOLUME_SYNC: Duration = Duration::from_secs(60);

/// The kubelet's retry of a failed mount: 500 ms, doubling up to 2 min 2 s.
const MOUNT_RETRY_FIRST: Duration = Duration::from_millis(500);
const MOUNT_RETRY_MAX: Duration = Duration::from_millis(122_000);

/// The wait after the `failures`-th failed mount in a row (counting from 1).
pub(super) fn mount_retry(failures: u32) -> Duration {
    MOUNT_RETRY_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MOUNT_RETRY_MAX)
}

/// Tokens by request, with when each is renewed.
pub(super) type Tokens = BTreeMap<volumes::TokenRequest, (String, Instant)>;

impl Worker {
    /// Sets up or refreshes the volumes; on failure posts the kubelet's FailedMount event,
    /// schedules the next try with back-off and returns false.
    pub(super) async fn sync_volumes(&mut self) -> bool {
        let message = match self.set_up_volumes().await {
            Ok(volumes) => {
                self.volumes = volumes;
                self.mount_failures = 0;
                self.volumes_due = Instant::now() + VOLUME_SYNC;
                return true;
            }
            Err(e) => e,
        };
        self.mount_failures += 1;
        self.volumes_due = Instant::now() + mount_retry(self.mount_failures);
        tracing::warn!(pod = %self.key(), "{message}");
        self.event(EventType::Warning, "FailedMount", &message)
            .await;
        false
    }

    async fn set_up_volumes(&mut self) -> Result<BTreeMap<String, Mountable>, String> {
        if !volumes::any(&self.pod) {
            return Ok(BTreeMap::new());
        }
        let tokens = self.volume_tokens().await?;
        let pod = &self.pod;
        let client = self.rt.client.clone();
        let ns = self.rec.namespace.clone();
        let err = |e: kube::Error| e.to_string();
        let (cm_names, secret_names) = volumes::references(pod);
        let objects = &self.rt.objects;
        let config_maps = objects.config_maps(&ns, &cm_names).await.map_err(err)?;
        let secrets = objects.secrets(&ns, &secret_names).await.map_err(err)?;
        let allocatable = if volumes::needs_allocatable(pod) {
            let node = Api::<Node>::all(client)
                .get(&self.rt.cfg.node)
                .await
                .map_err(err)?;
            node.status.and_then(|s| s.allocatable).unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let src = Sources {
            pod,
            config_maps: &config_maps,
            secrets: &secrets,
            tokens: &tokens,
            allocatable: &allocatable,
        };
        let dir = self.rt.dirs.dir(&self.rec.uid);
        volumes::set_up(&dir, &src).map_err(|e| e.to_string())
    }

    /// Every ConfigMap and Secret the pod's volumes and its containers' environment name.
    pub(super) fn references(&self) -> BTreeSet<Changed> {
        let (mut maps, mut secrets) = volumes::references(&self.pod);
        for slot in &self.slots {
            let (m, s) = env::references(&slot.spec);
            maps.extend(m);
            secrets.extend(s);
        }
        let namespace = &self.rec.namespace;
        let maps = maps.into_iter().map(|name| Changed::ConfigMap {
            namespace: namespace.clone(),
            name,
        });
        let secrets = secrets.into_iter().map(|name| Changed::Secret {
            namespace: namespace.clone(),
            name,
        });
        maps.chain(secrets).collect()
    }

    /// Whether the pod's volumes project `changed`.
    pub(super) fn projects(&self, changed: &Changed) -> bool {
        let (maps, secrets) = volumes::references(&self.pod);
        let (namespace, name, names) = match changed {
            Changed::ConfigMap { namespace, name } => (namespace, name, maps),
            Changed::Secret { namespace, name } => (namespace, name, secrets),
        };
        *namespace == self.rec.namespace && names.contains(name)
    }

    /// The service-account tokens projected volumes ask for, bound to this pod, renewed
    /// after 80% of their lifetime as the kubelet's token manager does.
    async fn volume_tokens(&mut self) -> Result<BTreeMap<volumes::TokenRequest, String>, String> {
        let sa_name = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let wanted = volumes::token_requests(&self.pod);
        self.volume_tokens.retain(|k, _| wanted.contains(k));
        for want in wanted {
            if self
                .volume_tokens
                .get(&want)
                .is_some_and(|(_, renew)| *renew > Instant::now())
            {
                continue;
            }
            let audiences = Some(want.audience.clone())
                .filter(|a| !a.is_empty())
                .into_iter()
                .collect();
            let token = self
                .request_token(&sa_name, audiences, want.expiration_seconds)
                .await
                .map_err(|e| format!("failed to fetch token: {e}"))?;
            let life = Duration::from_secs(want.expiration_seconds.max(0) as u64);
            self.volume_tokens
                .insert(want, (token, Instant::now() + life.mul_f64(0.8)));
        }
        Ok(self
            .volume_tokens
            .iter()
            .map(|(k, (t, _))| (k.clone(), t.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_retries_double_from_half_a_second_to_two_minutes() {
        let waits: Vec<u128> = (1..=10).map(|n| mount_retry(n).as_millis()).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 122000, 122000]
        );
        assert_eq!(mount_retry(u32::MAX), MOUNT_RETRY_MAX);
    }
}
