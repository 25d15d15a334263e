//! The cluster's settings a node agent needs, published in the API so that the agent of a
//! joined host reads them with its node credentials, as kubeadm publishes `kubelet-config`
//! and `kube-proxy` in kube-system: ConfigMap `kube-system/kinet-config`, readable by the
//! group `system:nodes` through Role `kinet:node-config` (`get` of that one name, nothing
//! else; the Node authorizer gives nodes only the ConfigMaps their pods mount).
//!
//! `kinet up` writes it from `cluster.json` on every start and on a proxy-mode switch; the
//! objects are pure values of [`NodeSettings`].

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::addons::{ensure, typed};
use crate::state::ClusterInfo;

pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap, named as kubeadm names its own (`kubeadm-config`, `kubelet-config`).
pub const NAME: &str = "kinet-config";
/// The Role and RoleBinding letting nodes read it (kubeadm's `kubeadm:kubelet-config`).
pub const ROLE: &str = "kinet:node-config";
/// The ConfigMap's key holding [`NodeSettings`] as YAML.
pub const KEY: &str = "node.yaml";

/// What every node agent runs with, whichever host it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSettings {
    /// kube-proxy's mode: `nftables` or `iptables`.
    pub proxy_mode: kinet_proxy::ProxyMode,
    /// How long a node may go without a heartbeat; its agent renews well within it.
    pub node_monitor_grace_period_seconds: u64,
    /// Whether agents run the service proxy (`kinet up --no-proxy`: off, for the add-on's
    /// DaemonSet or another proxy).
    #[serde(default = "on")]
    pub service_proxy: bool,
    /// Whether agents enforce NetworkPolicies (`kinet up --no-policy`: off).
    #[serde(default = "on")]
    pub network_policy: bool,
    /// Registry mirrors, insecure registries, offline pulls, images pulled for real.
    #[serde(default, skip_serializing_if = "kinet_oci_store::Settings::is_empty")]
    pub registries: kinet_oci_store::Settings,
}

impl NodeSettings {
    pub fn of(info: &ClusterInfo) -> NodeSettings {
        NodeSettings {
            proxy_mode: info.proxy_mode,
            node_monitor_grace_period_seconds: info.node_monitor_grace_period_secs,
            service_proxy: !info.no_proxy,
            network_policy: !info.no_policy,
            registries: info.registries.clone(),
        }
    }

    /// The settings a published ConfigMap holds.
    pub fn from_config_map(cm: &ConfigMap) -> Result<NodeSettings> {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .with_context(|| format!("ConfigMap {NAMESPACE}/{NAME} has no key {KEY}"))?;
        serde_yaml_ng::from_str(text)
            .with_context(|| format!("ConfigMap {NAMESPACE}/{NAME}, key {KEY}"))
    }
}

fn on() -> bool {
    true
}

/// The ConfigMap publishing `settings`.
pub fn config_map(settings: &NodeSettings) -> ConfigMap {
    let yaml = serde_yaml_ng::to_string(settings).expect("settings serialize");
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), yaml)])),
        ..Default::default()
    }
}

/// `get` of [`NAME`] only, for the group `system:nodes`.
pub fn rbac() -> (Role, RoleBinding) {
    let role = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ROLE, "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME], "verbs": ["get"]}],
    }));
    let binding = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": ROLE, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
    }));
    (role, binding)
}

/// Writes the cluster's settings (and the Role letting nodes read them) unless they are
/// already `settings`.
pub async fn publish(client: &kube::Client, settings: &NodeSettings) -> Result<()> {
    let (role, binding) = rbac();
    ensure(&Api::<Role>::namespaced(client.clone(), NAMESPACE), &role)
        .await
        .with_context(|| format!("Role {NAMESPACE}/{ROLE}"))?;
    ensure(
        &Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE),
        &binding,
    )
    .await
    .with_context(|| format!("RoleBinding {NAMESPACE}/{ROLE}"))?;
    let want = config_map(settings);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let have = ensure(&api, &want)
        .await
        .with_context(|| format!("ConfigMap {NAMESPACE}/{NAME}"))?;
    if have.data != want.data {
        let patch = json!({"data": want.data});
        api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("updating ConfigMap {NAMESPACE}/{NAME}"))?;
    }
    Ok(())
}

/// The settings the cluster publishes, read as a node.
pub async fn read(client: &kube::Client) -> Result<NodeSettings> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let cm = api.get(NAME).await.with_context(|| {
        format!("reading the cluster's settings (ConfigMap {NAMESPACE}/{NAME})")
    })?;
    NodeSettings::from_config_map(&cm)
}

#[cfg(test)]
#[path = "published_tests.rs"]
mod tests;
