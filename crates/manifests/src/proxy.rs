//! The service proxy as a DaemonSet (kube-proxy's shape): every node's Services as nftables
//! (or iptables) rules in the node's network namespace. It replaces kube-proxy, or runs
//! beside it serving only the Services labelled `service.kubernetes.io/service-proxy-name:
//! kinet`, which kube-proxy skips.

use serde_json::{json, Value};

use crate::objects::{self, cluster_role_and_binding, node_daemon_set, value};

pub use kinet_types::wellknown::SERVICE_PROXY_NAME_LABEL;
pub const NAMESPACE: &str = "kube-system";
/// The DaemonSet, ServiceAccount and ClusterRole(Binding).
pub const NAME: &str = "kinet-proxy";
/// The label value of the Services kinet's proxy serves beside kube-proxy.
pub const PROXY_NAME: &str = "kinet";
/// Beside kube-proxy, which holds 10249 and 10256 on every node, the metrics and healthz
/// ports move here.
pub const BESIDE_METRICS_PORT: u16 = 10263;
pub const BESIDE_HEALTHZ_PORT: u16 = 10264;

/// How the proxy add-on runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddon {
    /// `nftables` or `iptables`, as kube-proxy's `--proxy-mode`.
    pub mode: String,
    /// Serve only the Services labelled for kinet (kube-proxy keeps the rest), on ports of
    /// its own; else every Service without that label, in place of kube-proxy. Beside it
    /// the mode must be nftables: kube-proxy's iptables chains have fixed names, and the
    /// nftables table is kinet's own.
    pub beside_kube_proxy: bool,
    /// The pods' range, telling pod traffic from the rest (kube-proxy's `--cluster-cidr`).
    pub cluster_cidr: String,
    /// `host:port` of the API server. Replacing kube-proxy, the proxy cannot reach the API
    /// through the `kubernetes` Service it is yet to program (Cilium's `k8sServiceHost`).
    /// None: the Service's address.
    pub api_server: Option<(String, u16)>,
}

impl Default for ProxyAddon {
    fn default() -> Self {
        ProxyAddon {
            mode: "nftables".into(),
            beside_kube_proxy: false,
            cluster_cidr: "10.244.0.0/16".into(),
            api_server: None,
        }
    }
}

impl ProxyAddon {
    /// The image's arguments (see `kinet_cluster::proxy_image`).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--proxy-mode".into(),
            self.mode.clone(),
            "--cluster-cidr".into(),
            self.cluster_cidr.clone(),
        ];
        if self.beside_kube_proxy {
            let (metrics, healthz) = self.ports();
            args.extend([
                "--service-proxy-name".into(),
                PROXY_NAME.into(),
                "--metrics-bind-address".into(),
                format!("0.0.0.0:{metrics}"),
                "--healthz-bind-address".into(),
                format!("0.0.0.0:{healthz}"),
            ]);
        }
        args
    }

    /// The metrics and healthz ports: kube-proxy's, or beside it ports of its own.
    pub fn ports(&self) -> (u16, u16) {
        use kinet_types::wellknown::{PROXY_HEALTHZ_PORT, PROXY_METRICS_PORT};
        match self.beside_kube_proxy {
            true => (BESIDE_METRICS_PORT, BESIDE_HEALTHZ_PORT),
            false => (PROXY_METRICS_PORT, PROXY_HEALTHZ_PORT),
        }
    }
}

/// What the proxy reads and writes: kube-proxy's `system:node-proxier`, less Endpoints
/// (kinet's proxy reads EndpointSlices only).
pub fn rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["services", "nodes"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ])
}

/// The proxy container, with kube-proxy's ports.
fn container(addon: &ProxyAddon) -> Value {
    let (metrics, healthz) = addon.ports();
    json!({
        "name": NAME,
        "image": kinet_images::PROXY_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": addon.args(),
        "ports": [
            {"name": "metrics", "containerPort": metrics, "protocol": "TCP"},
            {"name": "healthz", "containerPort": healthz, "protocol": "TCP"},
        ],
        "livenessProbe": {"httpGet": {"path": "/livez", "port": healthz},
                          "initialDelaySeconds": 10, "periodSeconds": 10},
        // As kube-proxy's DaemonSet: netfilter writes, and setns (netlink sockets and
        // `iptables-restore` opened in the node's namespace) need more than NET_ADMIN.
        "securityContext": {"privileged": true},
    })
}

/// Every object of the proxy add-on, for `kinet manifests proxy`.
pub fn objects(addon: &ProxyAddon) -> Vec<Value> {
    let (role, binding) = cluster_role_and_binding(NAME, rules(), NAMESPACE, NAME);
    let mut daemon_set = node_daemon_set(NAMESPACE, NAME, container(addon));
    if let Some((host, port)) = &addon.api_server {
        // In-cluster clients read these; a container's own env overrides the Service's.
        let env = &mut daemon_set["spec"]["template"]["spec"]["containers"][0]["env"];
        let env = env.as_array_mut().expect("the node env");
        env.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": host}));
        env.push(json!({"name": "KUBERNETES_SERVICE_PORT", "value": port.to_string()}));
    }
    vec![
        objects::service_account(NAMESPACE, NAME),
        value(&role),
        value(&binding),
        daemon_set,
    ]
}
