//! The pod's volumes, set up before its sandbox as the kubelet's volume manager does, and
//! set up again every [`VOLUME_SYNC`] so configMap, secret and projected files follow
//! their objects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kinet_controllers::events::EventType;
use kube::Api;
use tokio::time::Instant;

use super::Worker;
use crate::pods::volumes::{self, Mountable, Sources};

/// How often volumes are refreshed (the kubelet's sync period is a minute; kinet is quicker
/// because a refresh that finds nothing changed writes nothing).
pub(super) const VOLUME_SYNC: Duration = Duration::from_secs(5);

/// Tokens by request, with when each is renewed.
pub(super) type Tokens = BTreeMap<volumes::TokenRequest, (String, Instant)>;

impl Worker {
    /// Sets up or refreshes the volumes; on failure posts the kubelet's FailedMount event
    /// and returns false.
    pub(super) async fn sync_volumes(&mut self) -> bool {
        self.volumes_due = Instant::now() + VOLUME_SYNC;
        let message = match self.set_up_volumes().await {
            Ok(volumes) => {
                self.volumes = volumes;
                return true;
            }
            Err(e) => e,
        };
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
        let mut config_maps = BTreeMap::new();
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        for n in cm_names {
            if let Some(cm) = cm_api.get_opt(&n).await.map_err(err)? {
                config_maps.insert(n, cm);
            }
        }
        let mut secrets = BTreeMap::new();
        let s_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for n in secret_names {
            if let Some(s) = s_api.get_opt(&n).await.map_err(err)? {
                secrets.insert(n, s);
            }
        }
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
