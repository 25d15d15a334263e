//! The add-ons `kinet up` deploys through the API, as kubeadm does: cluster DNS. The
//! objects keep kubeadm's names (ServiceAccount and Deployment `coredns`, Service `kube-dns`
//! at 10.96.0.10, label `k8s-app=kube-dns`), so what users know from real clusters holds;
//! the pods run kinet's own DNS server (image [`kinet_images::DNS_IMAGE`]).
//!
//! The objects are pure functions of [`DnsAddon`]; [`ensure_cluster_dns`] creates what is
//! missing and brings the Deployment's container back to the desired one, so running it on
//! every `up` converges and never duplicates.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub use kinet_types::wellknown::DNS_SERVICE_IP;
pub const NAMESPACE: &str = "kube-system";
/// kubeadm's names.
pub const DEPLOYMENT: &str = "coredns";
pub const SERVICE: &str = "kube-dns";
pub const SERVICE_ACCOUNT: &str = "coredns";
/// The add-ons' Deployments, `(namespace, name)`: `up` returns once each is Available.
/// Cluster DNS comes first.
pub fn deployments(info: &crate::state::ClusterInfo) -> Vec<(&'static str, &'static str)> {
    let mut all = vec![(NAMESPACE, DEPLOYMENT)];
    if !info.no_ingress {
        all.push((crate::ingress_addon::NAMESPACE, crate::ingress_addon::NAME));
    }
    all
}
/// `/metrics`, `/health` and `/ready` of the DNS server, as the API's int32 port.
pub const METRICS_PORT: i32 = kinet_types::wellknown::DNS_METRICS_PORT as i32;

/// What the cluster DNS add-on is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAddon {
    /// The cluster domain.
    pub zone: String,
    /// `kinet up --upstream-dns`; empty: names outside the zone are REFUSED.
    pub upstreams: Vec<SocketAddr>,
    pub replicas: i32,
}

impl DnsAddon {
    pub fn new(upstreams: Vec<SocketAddr>) -> DnsAddon {
        DnsAddon {
            zone: "cluster.local".into(),
            upstreams,
            replicas: 2,
        }
    }

    /// The image's arguments (see [`crate::dns_image`]).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--zone".to_string(), self.zone.clone()];
        for u in &self.upstreams {
            args.push("--upstream".into());
            args.push(u.to_string());
        }
        args
    }
}

fn labels() -> Value {
    json!({"k8s-app": "kube-dns"})
}

pub(crate) fn typed<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("add-on objects are well-formed")
}

pub fn service_account() -> ServiceAccount {
    typed(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
    }))
}

/// A least-privilege ClusterRole and its ClusterRoleBinding to one service account.
pub(crate) fn cluster_role_and_binding(
    name: &str,
    rules: Value,
    namespace: &str,
    service_account: &str,
) -> (ClusterRole, ClusterRoleBinding) {
    let role = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules,
    }));
    let binding = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }));
    (role, binding)
}

/// Creates an add-on's ClusterRole and ClusterRoleBinding unless present.
pub(crate) async fn ensure_rbac(
    client: &kube::Client,
    rbac: (ClusterRole, ClusterRoleBinding),
) -> Result<()> {
    let name = rbac.0.metadata.name.clone().unwrap_or_default();
    ensure(&Api::<ClusterRole>::all(client.clone()), &rbac.0)
        .await
        .with_context(|| format!("ClusterRole {name}"))?;
    ensure(&Api::<ClusterRoleBinding>::all(client.clone()), &rbac.1)
        .await
        .with_context(|| format!("ClusterRoleBinding {name}"))?;
    Ok(())
}

/// What the DNS server reads, as upstream CoreDNS's `system:coredns` ClusterRole allows.
pub fn rbac() -> (ClusterRole, ClusterRoleBinding) {
    let rules = json!([
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]);
    cluster_role_and_binding("system:coredns", rules, NAMESPACE, SERVICE_ACCOUNT)
}

/// The DNS server container.
pub fn container(addon: &DnsAddon) -> Container {
    let probe = |path: &str, delay: i32| {
        json!({"httpGet": {"path": path, "port": METRICS_PORT, "scheme": "HTTP"},
               "initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 5,
               "successThreshold": 1, "failureThreshold": if path == "/health" { 5 } else { 3 }})
    };
    typed(json!({
        "name": "coredns",
        "image": kinet_images::DNS_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": addon.args(),
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "livenessProbe": probe("/health", 60),
        "readinessProbe": probe("/ready", 0),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
        },
    }))
}

pub fn deployment(addon: &DnsAddon) -> Deployment {
    typed(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "labels": labels()},
        "spec": {
            "replicas": addon.replicas,
            "selector": {"matchLabels": labels()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    // The DNS server must not resolve through itself.
                    "dnsPolicy": "Default",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "containers": [container(addon)],
                },
            },
        },
    }))
}

pub fn service() -> Service {
    typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": SERVICE, "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": METRICS_PORT.to_string(), "prometheus.io/scrape": "true"},
        },
        "spec": {
            "selector": labels(),
            "clusterIP": DNS_SERVICE_IP,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
            ],
        },
    }))
}

/// Creates `obj` unless an object of that name exists; returns the stored object.
pub(crate) async fn ensure<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    if let Some(existing) = api.get_opt(&name).await? {
        return Ok(existing);
    }
    match api.create(&PostParams::default(), obj).await {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&name).await?),
        other => Ok(other?),
    }
}

/// Deploys cluster DNS: ServiceAccount, Service and Deployment in kube-system. Existing
/// objects are kept; the Deployment's container is patched when its image or arguments
/// (the upstreams) differ from `addon`.
pub async fn ensure_cluster_dns(client: &kube::Client, addon: &DnsAddon) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&sas, &service_account())
        .await
        .context("ServiceAccount kube-system/coredns")?;
    ensure_rbac(client, rbac()).await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&svcs, &service())
        .await
        .context("Service kube-system/kube-dns")?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let want = deployment(addon);
    let have = ensure(&deploys, &want)
        .await
        .context("Deployment kube-system/coredns")?;
    ensure_container(&deploys, &have, container(addon))
        .await
        .context("updating Deployment kube-system/coredns")
}

/// Brings an add-on Deployment's container back to `want` when its image or arguments differ.
pub(crate) async fn ensure_container(
    deploys: &Api<Deployment>,
    have: &Deployment,
    want: Container,
) -> Result<()> {
    let current = have
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == want.name))
        .is_some_and(|c| c.image == want.image && c.args == want.args);
    if !current {
        // A merge patch replaces the container list: the add-on owns it.
        let patch = json!({"spec": {"template": {"spec": {"containers": [want]}}}});
        let name = have.metadata.name.as_deref().unwrap_or_default();
        deploys
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// `kinet up`'s step: the add-ons for a cluster with nodes, configured from its record.
pub async fn deploy(client: &kube::Client, info: &crate::state::ClusterInfo) -> Result<()> {
    let step = crate::progress::Step::start("Deploying cluster DNS");
    ensure_cluster_dns(client, &DnsAddon::new(info.upstream_dns.clone())).await?;
    step.done();
    if !info.no_ingress {
        let step = crate::progress::Step::start("Deploying the ingress controller");
        crate::ingress_addon::ensure_ingress(client).await?;
        step.done();
    }
    Ok(())
}

#[cfg(test)]
#[path = "addons_tests.rs"]
mod tests;
