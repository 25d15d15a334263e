//! Facts every crate shares about a kinet cluster: well-known labels, address ranges and ports.
//! Each is written here once; the crates that need one read it from here.

/// The EndpointSlice label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service label naming the proxy that serves it; kube-proxy skips labelled Services.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// The whole cluster's pod range (kube-controller-manager's `--cluster-cidr`, kind's default).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The ClusterIP range (kube-apiserver's `--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";

/// The kube-dns Service's ClusterIP, the tenth address of [`SERVICE_CIDR`] as in kubeadm.
pub const DNS_SERVICE_IP: &str = "10.96.0.10";

/// The node agent's API (logs, exec, attach, port-forward): the kubelet's port.
pub const KUBELET_PORT: u16 = 10250;

/// The proxy's metrics server: kube-proxy's `--metrics-bind-address` port.
pub const PROXY_METRICS_PORT: u16 = 10249;

/// The proxy's `/healthz` and `/livez`: kube-proxy's `--healthz-bind-address` port.
pub const PROXY_HEALTHZ_PORT: u16 = 10256;

/// Cluster DNS's metrics, `/health` and `/ready`: CoreDNS's port.
pub const DNS_METRICS_PORT: u16 = 9153;

/// The taint of a node whose Ready condition is False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown (it stopped heartbeating).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The cluster autoscaler's taint on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// The label selecting a Job's pods by the Job's uid.
pub const JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The same, as Kubernetes before 1.27 spelled it (still set for compatibility).
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
/// The label naming a pod's Job.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The same, older spelling.
pub const LEGACY_JOB_NAME: &str = "job-name";
/// The label naming the revision of a StatefulSet (or DaemonSet) a pod was made from.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
/// The label giving a StatefulSet pod its own name, so a Service can select one pod.
pub const STATEFULSET_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// The label giving a StatefulSet pod its ordinal.
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";
