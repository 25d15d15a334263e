//! The cluster as the model sees it: pods, namespaces and parsed policies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1::NetworkPolicy;
pub use kinet_proxy_rules::Proto;

use crate::policy::{Policy, PolicyId};
use crate::PolicyError;

/// A named container port, what a policy's named `port` resolves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: String,
    pub port: u16,
    pub proto: Proto,
}

/// A pod with an address: what policies select and what packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ip: Ipv4Addr,
    pub node: String,
    pub ports: Vec<ContainerPort>,
}

impl Pod {
    /// From the API object; `None` while the pod has no IPv4 address yet, or when it uses the
    /// host's network (its traffic carries the node's address, which policies do not select).
    pub fn from_k8s(pod: &core::Pod) -> Option<Pod> {
        let spec = pod.spec.as_ref()?;
        if spec.host_network == Some(true) {
            return None;
        }
        let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(ContainerPort {
                    name: p.name.clone()?,
                    port: u16::try_from(p.container_port).ok()?,
                    proto: Proto::from_k8s(p.protocol.as_deref())?,
                })
            })
            .collect();
        Some(Pod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            node: spec.node_name.clone().unwrap_or_default(),
            ports,
        })
    }

    /// The port number a named port has on this pod, for this protocol.
    pub(crate) fn named_port(&self, name: &str, proto: Proto) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.proto == proto)
            .map(|p| p.port)
    }
}

/// A namespace's labels, what namespace selectors match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Namespace {
    pub fn from_k8s(ns: &core::Namespace) -> Namespace {
        Namespace {
            name: ns.metadata.name.clone().unwrap_or_default(),
            labels: ns.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

/// A pod's namespace and name.
pub(crate) type PodKey = (String, String);

/// Everything a verdict depends on. Pods are kept in (namespace, name) order, so a
/// namespace's pods are one range; policies sorted by namespace and name, the order in which
/// both the model and the compiled ruleset try their rules.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pods: BTreeMap<PodKey, Pod>,
    /// The pods holding each address (more than one only while a pod that went is still
    /// listed).
    by_ip: HashMap<Ipv4Addr, BTreeSet<PodKey>>,
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    pub(crate) policies: BTreeMap<PolicyId, Policy>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Adds or replaces (same namespace and name) a pod.
    pub fn set_pod(&mut self, pod: Pod) {
        let key = (pod.namespace.clone(), pod.name.clone());
        self.unindex(&key);
        self.by_ip.entry(pod.ip).or_default().insert(key.clone());
        self.pods.insert(key, pod);
    }

    /// Removes a pod (absent is fine).
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.unindex(&key);
        self.pods.remove(&key);
    }

    /// Drops pod `key`'s address from the address index.
    fn unindex(&mut self, key: &PodKey) {
        let Some(old) = self.pods.get(key) else {
            return;
        };
        if let Some(holders) = self.by_ip.get_mut(&old.ip) {
            holders.remove(key);
            if holders.is_empty() {
                self.by_ip.remove(&old.ip);
            }
        }
    }

    pub fn set_namespace(&mut self, ns: Namespace) {
        self.namespaces.insert(ns.name.clone(), ns);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Adds or replaces a policy. A policy that cannot be parsed is refused and changes
    /// nothing (the caller reports it); the API server's validation makes that rare.
    pub fn set_policy(&mut self, np: &NetworkPolicy) -> Result<(), PolicyError> {
        let p = Policy::parse(np)?;
        self.policies.insert(p.id.clone(), p);
        Ok(())
    }

    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        self.policies.remove(&PolicyId {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    /// Every pod, in (namespace, name) order.
    pub fn pods(&self) -> impl ExactSizeIterator<Item = &Pod> + Clone {
        self.pods.values()
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.get(&(namespace.to_string(), name.to_string()))
    }

    /// The pods of namespace `ns`, in name order.
    pub(crate) fn pods_in<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Pod> {
        self.pods
            .range((ns.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == ns)
            .map(|(_, p)| p)
    }

    pub(crate) fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&Pod> {
        let key = self.by_ip.get(&ip)?.first()?;
        self.pods.get(key)
    }

    /// A namespace's labels for selectors (none for an unknown namespace).
    pub(crate) fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns).map(|n| &n.labels)
    }

    /// The policies in use, in (namespace, name) order.
    pub fn policy_ids(&self) -> impl Iterator<Item = &crate::PolicyId> {
        self.policies.values().map(|p| &p.id)
    }

    /// The policies of namespace `ns` (the only ones that can select its pods), in name order.
    pub(crate) fn policies_in<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Policy> {
        let first = PolicyId {
            namespace: ns.to_string(),
            name: String::new(),
        };
        self.policies
            .range(first..)
            .take_while(move |(id, _)| id.namespace == ns)
            .map(|(_, p)| p)
    }
}
