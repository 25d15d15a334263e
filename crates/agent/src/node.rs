//! The Node object this agent registers and the status it posts, computed from data alone
//! (no API calls), as the kubelet's `initialNode` and `setNodeStatus` build them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::readiness::Verdict;

/// The label kind and kubeadm put on control-plane nodes (value empty).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The version the agent reports as its kubelet.
pub const KUBELET_VERSION: &str = "v1.32.0-kinet";
/// The port of the agent's API (logs, exec, attach, port-forward), the kubelet's 10250.
pub const KUBELET_PORT: i32 = kinet_types::wellknown::KUBELET_PORT as i32;

/// What the node has to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Logical CPUs.
    pub cpu: u32,
    /// Memory in KiB (as /proc/meminfo counts it).
    pub memory_kib: u64,
    /// Pods the node accepts (see [`crate::host::DEFAULT_MAX_PODS`]).
    pub pods: u32,
}

/// The facts `kubectl get nodes -o wide` and `describe node` show about the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemInfo {
    /// e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os_image: String,
    /// e.g. "6.1.0-18-amd64".
    pub kernel_version: String,
    /// Go's name for it: amd64, arm64.
    pub architecture: String,
    /// e.g. "kinet://0.1.0".
    pub container_runtime_version: String,
    /// /etc/machine-id (the host's: nodes share the machine).
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
}

/// Everything that decides the Node object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The Node's name, also its hostname.
    pub name: String,
    /// Its address on the underlay: the Node's InternalIP.
    pub internal_ip: Ipv4Addr,
    /// Labelled as control plane (not tainted: it runs pods too).
    pub control_plane: bool,
    /// Capacity, also reported as allocatable.
    pub capacity: Capacity,
    /// Machine facts.
    pub system: SystemInfo,
}

/// The labels the agent owns on its Node.
pub fn labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_string(), cfg.name.clone());
    l.insert("kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    l.insert(
        "kubernetes.io/arch".to_string(),
        cfg.system.architecture.clone(),
    );
    l.insert(
        "beta.kubernetes.io/arch".to_string(),
        cfg.system.architecture.clone(),
    );
    if cfg.control_plane {
        l.insert(CONTROL_PLANE_LABEL.to_string(), String::new());
    }
    l
}

/// The Node to create on first registration: metadata only; the status follows separately
/// (through `/status`, as the kubelet does after registering).
pub fn node_object(cfg: &NodeConfig) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(labels(cfg)),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// The node's status at `now`, Ready as `ready` says. A condition that keeps its status
/// keeps its `lastTransitionTime` from `previous`, so only the heartbeat time moves.
pub fn status(
    cfg: &NodeConfig,
    now: Timestamp,
    previous: Option<&NodeStatus>,
    ready: &Verdict,
) -> NodeStatus {
    let resources = resources(&cfg.capacity);
    let conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ("Ready", ready.status, ready.reason, ready.message.as_str()),
    ]
    .into_iter()
    .map(|(type_, status, reason, message)| {
        let kept = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
            .map(|c| (c.status.as_str(), c.last_transition_time.as_ref()));
        let transition = transition_time(kept, status, now);
        NodeCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(transition),
        }
    })
    .collect();
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        allocatable: Some(resources.clone()),
        capacity: Some(resources),
        conditions: Some(conditions),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: cfg.system.architecture.clone(),
            boot_id: cfg.system.boot_id.clone(),
            container_runtime_version: cfg.system.container_runtime_version.clone(),
            kernel_version: cfg.system.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_string(),
            machine_id: cfg.system.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: cfg.system.os_image.clone(),
            swap: None,
            system_uuid: String::new(),
        }),
        ..NodeStatus::default()
    }
}

fn resources(c: &Capacity) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(c.cpu.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", c.memory_kib)),
        ),
        ("pods".to_string(), Quantity(c.pods.to_string())),
    ])
}

/// A condition's `lastTransitionTime`: kept from the previous (status, time) while the status
/// stays, `now` when it changes (as the kubelet sets node and pod conditions).
pub fn transition_time(
    previous: Option<(&str, Option<&Time>)>,
    status: &str,
    now: Timestamp,
) -> Time {
    previous
        .filter(|(s, _)| *s == status)
        .and_then(|(_, t)| t.cloned())
        .unwrap_or(Time(now))
}

/// Whether `node` says Ready=True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(control_plane: bool) -> NodeConfig {
        NodeConfig {
            name: "demo-control-plane".into(),
            internal_ip: Ipv4Addr::new(172, 18, 0, 2),
            control_plane,
            capacity: Capacity {
                cpu: 4,
                memory_kib: 8_000_000,
                pods: 110,
            },
            system: SystemInfo {
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel_version: "6.1.0".into(),
                architecture: "amd64".into(),
                container_runtime_version: "kinet://0.1.0".into(),
                machine_id: "m".into(),
                boot_id: "b".into(),
            },
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn ready() -> Verdict {
        crate::readiness::Readiness {
            network: crate::readiness::Check::Ok,
            proxy: crate::readiness::Check::Ok,
        }
        .verdict()
    }

    #[test]
    fn control_plane_is_labelled_not_tainted() {
        let node = node_object(&cfg(true));
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels[CONTROL_PLANE_LABEL], "");
        assert_eq!(labels["kubernetes.io/hostname"], "demo-control-plane");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert!(
            node.spec.is_none(),
            "no taints, no podCIDR: the controllers own spec"
        );
        assert!(!super::labels(&cfg(false)).contains_key(CONTROL_PLANE_LABEL));
    }

    #[test]
    fn status_reports_address_capacity_and_versions() {
        let s = status(&cfg(false), ts(1000), None, &ready());
        let addrs = s.addresses.unwrap();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "172.18.0.2");
        let cap = s.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "4");
        assert_eq!(cap["memory"].0, "8000000Ki");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(s.allocatable.unwrap(), cap);
        let info = s.node_info.unwrap();
        assert_eq!(info.kubelet_version, "v1.32.0-kinet");
        assert_eq!(info.container_runtime_version, "kinet://0.1.0");
        assert_eq!(info.operating_system, "linux");
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    }

    #[test]
    fn heartbeat_moves_but_transition_stays() {
        let first = status(&cfg(false), ts(1000), None, &ready());
        let second = status(&cfg(false), ts(1010), Some(&first), &ready());
        for c in second.conditions.as_ref().unwrap() {
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(1010))), "{}", c.type_);
            assert_eq!(c.last_transition_time, Some(Time(ts(1000))), "{}", c.type_);
        }
        // A condition that was False before transitions now.
        let mut not_ready = first.clone();
        for c in not_ready.conditions.as_mut().unwrap() {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        let third = status(&cfg(false), ts(1020), Some(&not_ready), &ready());
        let ready = third
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.last_transition_time, Some(Time(ts(1020))));
    }

    #[test]
    fn a_node_not_ready_says_why() {
        let verdict = crate::readiness::Readiness::starting().verdict();
        let first = status(&cfg(false), ts(1000), None, &verdict);
        let ready_of = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        let c = ready_of(&first);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(c.message, Some(verdict.message.clone()));
        // Turning Ready is a transition; the pressure conditions keep theirs.
        let second = status(&cfg(false), ts(1005), Some(&first), &ready());
        assert_eq!(ready_of(&second).last_transition_time, Some(Time(ts(1005))));
        let memory = second
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .unwrap();
        assert_eq!(memory.last_transition_time, Some(Time(ts(1000))));
    }

    #[test]
    fn readiness_is_read_from_conditions() {
        let mut node = node_object(&cfg(false));
        assert!(!is_ready(&node));
        node.status = Some(status(&cfg(false), ts(1), None, &ready()));
        assert!(is_ready(&node));
    }
}
