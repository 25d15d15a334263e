//! Cluster DNS, with kubeadm's names (ServiceAccount and Deployment `coredns`, Service
//! `kube-dns` at 10.96.0.10, label `k8s-app=kube-dns`) so that what users know from real
//! clusters holds; the pods run kinet's own DNS server (image [`kinet_images::DNS_IMAGE`]).

use std::net::SocketAddr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::{json, Value};

use crate::objects::{self, cluster_role_and_binding, typed, value};

pub use kinet_types::wellknown::DNS_SERVICE_IP;
pub const NAMESPACE: &str = "kube-system";
/// kubeadm's names.
pub const DEPLOYMENT: &str = "coredns";
pub const SERVICE: &str = "kube-dns";
pub const SERVICE_ACCOUNT: &str = "coredns";
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
    /// The `kube-dns` Service's ClusterIP, the one kubelets put in pods' resolv.conf.
    pub cluster_ip: String,
}

impl DnsAddon {
    pub fn new(upstreams: Vec<SocketAddr>) -> DnsAddon {
        DnsAddon {
            zone: "cluster.local".into(),
            upstreams,
            replicas: 2,
            cluster_ip: DNS_SERVICE_IP.into(),
        }
    }

    /// The image's arguments (see `kinet_cluster::dns_image`).
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

pub fn service_account() -> ServiceAccount {
    typed(objects::service_account(NAMESPACE, SERVICE_ACCOUNT))
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

pub fn service(addon: &DnsAddon) -> Service {
    typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": SERVICE, "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": METRICS_PORT.to_string(), "prometheus.io/scrape": "true"},
        },
        "spec": {
            "selector": labels(),
            "clusterIP": addon.cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
            ],
        },
    }))
}

/// Every object of cluster DNS, for `kinet manifests dns`.
pub fn objects(addon: &DnsAddon) -> Vec<Value> {
    let (role, binding) = rbac();
    vec![
        value(&service_account()),
        value(&role),
        value(&binding),
        value(&service(addon)),
        value(&deployment(addon)),
    ]
}
