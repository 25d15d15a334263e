//! The sandbox of a pod: address, network, managed files, service-account token, pause.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::Api;

use super::Worker;
use crate::pods::files;
use crate::pods::sandbox::{self, Files};

impl Worker {
    pub(super) async fn setup_sandbox(&mut self) -> anyhow::Result<()> {
        let rt = self.rt.clone();
        if let Some(old) = self.rec.pause.take() {
            // A previous sandbox died: its containers go with it.
            for c in &mut self.rec.containers {
                if let Some(p) = c.process.take() {
                    rt.kernel.stop(p, Duration::ZERO).await;
                }
            }
            rt.kernel.stop(old, Duration::ZERO).await;
        }
        let uid = self.rec.uid.clone();
        let host_network = self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        // On the host network the pod shares the node's namespace and address.
        let (ip, netns) = if host_network {
            (rt.cfg.host_ip, None)
        } else {
            let netns = sandbox::netns_name(&rt.cfg.cluster, &uid);
            (rt.allocate_ip(&uid)?, Some(netns))
        };
        self.rec.ip = ip;
        self.rec.host_network = host_network;
        self.rec.netns = netns.clone().unwrap_or_default();
        self.rec.host_veth = netns
            .as_deref()
            .map(kinet_cni::host_veth_name)
            .unwrap_or_default();
        rt.dirs.save(&self.rec)?;
        if let Some(netns) = &netns {
            rt.kernel.network(netns, ip).await?;
        }

        let dir = rt.dirs.dir(&uid);
        let sa = self.service_account_files(&dir).await?;
        let files = Files::under(&dir, sa);
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&files.hosts, files::hosts_file(&self.pod, ip, &rt.cfg.dns))?;
        std::fs::write(
            &files.resolv,
            files::resolv_conf(&self.pod, &rt.cfg.dns, &host_resolv),
        )?;
        // As the kubelet does: a pod on the host network has the node's name.
        let hostname = if host_network {
            rt.cfg.node.clone()
        } else {
            files::hostname(&self.pod, &rt.cfg.dns).0
        };
        std::fs::write(&files.hostname, format!("{hostname}\n"))?;
        let pause = rt
            .kernel
            .start_pause(netns.as_deref(), &hostname, &dir.join("pause.log"))
            .await?;
        self.rec.pause = Some(pause);
        rt.dirs.save(&self.rec)?;
        self.sandbox_ready = true;
        tracing::info!(pod = %self.key(), %ip, pause = pause.pid, "sandbox ready");
        Ok(())
    }

    /// Writes the service-account token, CA and namespace; false when the pod opts out.
    pub(super) async fn service_account_files(
        &self,
        dir: &std::path::Path,
    ) -> anyhow::Result<bool> {
        let spec = self.pod.spec.as_ref();
        let ns = self.rec.namespace.clone();
        let sa_name = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let sas: Api<ServiceAccount> = Api::namespaced(self.rt.client.clone(), &ns);
        let sa_opt = sas
            .get_opt(&sa_name)
            .await?
            .and_then(|sa| sa.automount_service_account_token);
        let automount = spec
            .and_then(|s| s.automount_service_account_token)
            .or(sa_opt)
            .unwrap_or(true);
        if !automount {
            return Ok(false);
        }
        let token = self
            .request_token(&sa_name, Vec::new(), 3607)
            .await
            .map_err(|e| anyhow::anyhow!("failed to fetch token for {ns}/{sa_name}: {e}"))?;
        let sa_dir = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa_dir)?;
        std::fs::write(sa_dir.join("token"), token)?;
        std::fs::write(sa_dir.join("ca.crt"), &self.rt.cfg.ca_pem)?;
        std::fs::write(sa_dir.join("namespace"), &ns)?;
        Ok(true)
    }

    /// A token of the service account `sa_name`, bound to this pod (a TokenRequest).
    pub(super) async fn request_token(
        &self,
        sa_name: &str,
        audiences: Vec<String>,
        expiration_seconds: i64,
    ) -> Result<String, kube::Error> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.rt.client.clone(), &self.rec.namespace);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences,
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(self.rec.name.clone()),
                    uid: Some(self.rec.uid.clone()),
                }),
            },
            ..TokenRequest::default()
        };
        let status = sas
            .create_token_request(sa_name, &PostParams::default(), &req)
            .await?
            .status;
        Ok(status.map(|s| s.token).unwrap_or_default())
    }
}
