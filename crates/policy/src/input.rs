//! The cluster as the model sees it: pods, namespaces and parsed policies.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::serde_json::{Map, Value};
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

/// Labels in the form the selector crate matches.
fn label_map(labels: &BTreeMap<String, String>) -> Map<String, Value> {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Everything a verdict depends on. Policies are kept sorted by namespace and name, the
/// order in which both the model and the compiled ruleset try their rules.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub(crate) pods: Vec<Pod>,
    /// Each pod's labels in the selector crate's form, at the pod's index: selectors run
    /// pods × policies times per compile.
    pod_labels: Vec<Map<String, Value>>,
    /// A pod's index in `pods`, by (namespace, name).
    pod_index: HashMap<(String, String), usize>,
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    namespace_labels: BTreeMap<String, Map<String, Value>>,
    pub(crate) policies: BTreeMap<PolicyId, Policy>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Adds or replaces (same namespace and name) a pod.
    pub fn set_pod(&mut self, pod: Pod) {
        let labels = label_map(&pod.labels);
        match self
            .pod_index
            .get(&(pod.namespace.clone(), pod.name.clone()))
        {
            Some(&i) => {
                self.pods[i] = pod;
                self.pod_labels[i] = labels;
            }
            None => {
                self.pod_index
                    .insert((pod.namespace.clone(), pod.name.clone()), self.pods.len());
                self.pods.push(pod);
                self.pod_labels.push(labels);
            }
        }
    }

    /// Removes a pod (absent is fine); the last pod takes its index.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(i) = self
            .pod_index
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return;
        };
        self.pods.swap_remove(i);
        self.pod_labels.swap_remove(i);
        if let Some(moved) = self.pods.get(i) {
            self.pod_index
                .insert((moved.namespace.clone(), moved.name.clone()), i);
        }
    }

    pub fn set_namespace(&mut self, ns: Namespace) {
        self.namespace_labels
            .insert(ns.name.clone(), label_map(&ns.labels));
        self.namespaces.insert(ns.name.clone(), ns);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespace_labels.remove(name);
        self.namespaces.remove(name);
    }

    /// `pod`'s labels for selectors: the cached map when `pod` is one of this cluster's
    /// (found by its address in `pods`), else built.
    pub(crate) fn pod_labels(&self, pod: &Pod) -> Cow<'_, Map<String, Value>> {
        let start = self.pods.as_ptr() as usize;
        let at = pod as *const Pod as usize;
        let size = std::mem::size_of::<Pod>();
        match at.checked_sub(start).map(|off| off / size) {
            Some(i) if i < self.pods.len() && std::ptr::eq(&self.pods[i], pod) => {
                Cow::Borrowed(&self.pod_labels[i])
            }
            _ => Cow::Owned(label_map(&pod.labels)),
        }
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

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        let i = self
            .pod_index
            .get(&(namespace.to_string(), name.to_string()))?;
        Some(&self.pods[*i])
    }

    pub(crate) fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&Pod> {
        self.pods.iter().find(|p| p.ip == ip)
    }

    /// A namespace's labels for selectors (none for an unknown namespace).
    pub(crate) fn namespace_labels(&self, ns: &str) -> Option<&Map<String, Value>> {
        self.namespace_labels.get(ns)
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

    /// Pods grouped by namespace.
    pub(crate) fn pods_by_namespace(&self) -> BTreeMap<&str, Vec<&Pod>> {
        let mut out: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for p in &self.pods {
            out.entry(p.namespace.as_str()).or_default().push(p);
        }
        out
    }
}
