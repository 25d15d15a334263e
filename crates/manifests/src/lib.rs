//! kinet's add-ons as Kubernetes objects, with no I/O: cluster DNS ([`dns`]), the service
//! proxy ([`proxy`]), the NetworkPolicy enforcer ([`policy`]) and the ingress controller
//! ([`ingress`]). `kinet up` creates the DNS and ingress objects in its own clusters;
//! `kinet manifests <addon>` prints any of them as YAML to apply to any cluster
//! ([`Addon::objects`], [`yaml`]).
//!
//! Each add-on gets its own ServiceAccount and a ClusterRole with only the rules its process
//! uses, modelled on upstream's: CoreDNS's `system:coredns`, kube-proxy's
//! `system:node-proxier`, ingress-nginx's controller role.

pub mod dns;
pub mod ingress;
mod objects;
pub mod policy;
pub mod proxy;

pub use objects::{cluster_role_and_binding, typed, yaml};

use serde_json::Value;

/// The add-ons `kinet manifests` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addon {
    Dns(dns::DnsAddon),
    Proxy(proxy::ProxyAddon),
    Policy,
    Ingress,
}

impl Addon {
    /// Every object of the add-on, in the order `kubectl apply` needs them (namespaces and
    /// accounts before what runs as them).
    pub fn objects(&self) -> Vec<Value> {
        match self {
            Addon::Dns(a) => dns::objects(a),
            Addon::Proxy(a) => proxy::objects(a),
            Addon::Policy => policy::objects(),
            Addon::Ingress => ingress::objects(),
        }
    }
}

#[cfg(test)]
mod tests;
