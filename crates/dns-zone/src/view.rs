//! The cluster as DNS sees it: Services and EndpointSlices per namespace, plus
//! reverse indexes from IP to owner for PTR answers.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::answer::{hostmaster, ns_dns};
use crate::compact::Names;
use crate::ip_index::IpIndex;
use crate::model::{service_rec, slice_rec, PortRec, ServiceRec, SliceRec, SvcKind};

/// CoreDNS kubernetes plugin default TTL.
pub const DEFAULT_TTL: u32 = 5;

#[derive(Default, Debug)]
pub(crate) struct Namespace {
    pub services: HashMap<Arc<str>, ServiceRec>,
    /// By slice name.
    pub slices: HashMap<Arc<str>, SliceRec>,
    /// Service name -> its slice names, so a lookup touches only its own slices.
    pub by_service: HashMap<Arc<str>, Vec<Arc<str>>>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.services.is_empty() && self.slices.is_empty()
    }

    /// Slices owned by `service`.
    pub(crate) fn slices_of<'a>(&'a self, service: &str) -> impl Iterator<Item = &'a SliceRec> {
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|n| self.slices.get(n))
    }
}

/// The cluster as DNS sees it, built from Services and EndpointSlices.
#[derive(Debug)]
pub struct ClusterView {
    pub(crate) zone: Name,
    pub(crate) zone_str: String,
    /// The zone, `ns.dns.<zone>` and `hostmaster.<zone>` as wire labels
    /// (lowercase, no root label), for answers written without hickory.
    pub(crate) zone_wire: Box<[u8]>,
    pub(crate) ns_wire: Box<[u8]>,
    pub(crate) hostmaster_wire: Box<[u8]>,
    pub(crate) namespaces: HashMap<Arc<str>, Namespace>,
    /// Namespaces fed explicitly (they exist even without Services).
    pub(crate) known_namespaces: HashSet<Arc<str>>,
    /// Cluster IP -> Services holding it (normally one).
    pub(crate) service_ips: IpIndex,
    /// Endpoint IP -> slices listing it.
    pub(crate) endpoint_ips: IpIndex,
    pub(crate) ns_addrs: Option<Vec<IpAddr>>,
    pub(crate) ttl: u32,
    pub(crate) serial: u32,
    /// Port names, shared by all records.
    port_names: Names,
    /// Bumped by every change, including those the serial does not track; answers
    /// computed at one generation stay valid until it moves.
    generation: u64,
}

/// The cluster zone given is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster zone {zone:?} is not a DNS name: {reason}")]
pub struct ZoneError {
    pub zone: String,
    pub reason: String,
}

fn lower(s: &str) -> Arc<str> {
    s.to_ascii_lowercase().into()
}

impl ClusterView {
    /// A view for `zone` (e.g. `"cluster.local"`), empty; an error if `zone` is not a DNS name.
    pub fn new(zone: &str) -> Result<Self, ZoneError> {
        let zone_str = zone.trim_end_matches('.').to_ascii_lowercase();
        let invalid = |reason: String| ZoneError {
            zone: zone.to_string(),
            reason,
        };
        if zone_str.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let mut name = Name::from_ascii(&zone_str).map_err(|e| invalid(e.to_string()))?;
        name.set_fqdn(true);
        Ok(ClusterView {
            zone_wire: wire_labels(&name),
            ns_wire: wire_labels(&ns_dns(&name)),
            hostmaster_wire: wire_labels(&hostmaster(&name)),
            zone: name,
            zone_str,
            namespaces: HashMap::new(),
            known_namespaces: HashSet::new(),
            service_ips: IpIndex::default(),
            endpoint_ips: IpIndex::default(),
            ns_addrs: None,
            ttl: DEFAULT_TTL,
            serial: 1,
            port_names: Names::default(),
            generation: 0,
        })
    }

    /// The zone apex, lowercase and fully qualified.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// TTL for cluster records (default 5 s as in CoreDNS).
    pub fn set_ttl(&mut self, ttl: u32) {
        self.ttl = ttl;
        self.generation += 1;
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// SOA serial; bumped on every change. The server may pin it (CoreDNS uses
    /// the last-modified unix time).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
        self.generation += 1;
    }

    /// Changes whenever any answer may have changed (see [`ClusterView`]'s mutators).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Addresses for `ns.dns.<zone>`; default is kube-system/kube-dns's cluster IPs.
    pub fn set_ns_addrs(&mut self, addrs: Vec<IpAddr>) {
        self.ns_addrs = Some(addrs);
        self.generation += 1;
    }

    /// Mark a namespace as existing even if it has no Services, so that
    /// `<ns>.svc.<zone>` is NODATA rather than NXDOMAIN.
    pub fn add_namespace(&mut self, ns: &str) {
        self.known_namespaces.insert(lower(ns));
        self.generation += 1;
    }

    pub fn remove_namespace(&mut self, ns: &str) {
        self.known_namespaces.remove(&*ns.to_ascii_lowercase());
        self.generation += 1;
    }

    /// `(namespace, name)` of every Service held, lowercased: what a watch's
    /// relist compares against, so the watch keeps no copy of its own.
    pub fn service_keys(&self) -> Vec<(String, String)> {
        self.namespaces
            .iter()
            .flat_map(|(ns, n)| n.services.keys().map(|k| (ns.to_string(), k.to_string())))
            .collect()
    }

    /// `(namespace, name)` of every EndpointSlice held, lowercased.
    pub fn slice_keys(&self) -> Vec<(String, String)> {
        self.namespaces
            .iter()
            .flat_map(|(ns, n)| n.slices.keys().map(|k| (ns.to_string(), k.to_string())))
            .collect()
    }

    /// Namespaces fed with [`Self::add_namespace`], lowercased.
    pub fn namespace_names(&self) -> Vec<String> {
        self.known_namespaces
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    pub fn service_count(&self) -> usize {
        self.namespaces.values().map(|n| n.services.len()).sum()
    }

    pub(crate) fn namespace_exists(&self, ns: &str) -> bool {
        self.known_namespaces.contains(ns)
            || self
                .namespaces
                .get(ns)
                .is_some_and(|n| !n.services.is_empty())
    }

    pub(crate) fn service(&self, ns: &str, name: &str) -> Option<(&Namespace, &ServiceRec)> {
        let n = self.namespaces.get(ns)?;
        Some((n, n.services.get(name)?))
    }

    /// Cluster IPs of the DNS service itself, answering `ns.dns.<zone>`.
    pub(crate) fn nameserver_addrs(&self) -> Vec<IpAddr> {
        if let Some(a) = &self.ns_addrs {
            return a.clone();
        }
        match self.service("kube-system", "kube-dns") {
            Some((
                _,
                ServiceRec {
                    kind: SvcKind::ClusterIp(ips),
                    ..
                },
            )) => ips.as_slice().to_vec(),
            _ => Vec::new(),
        }
    }

    /// The namespace's name as the map already holds it, so the records and
    /// indexes of its Services share one allocation.
    fn namespace_key(&self, ns: &str) -> Arc<str> {
        let ns = ns.to_ascii_lowercase();
        match self.namespaces.get_key_value(ns.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => ns.into(),
        }
    }

    fn share_names(&mut self, ports: &mut [PortRec]) {
        for p in ports {
            p.name = self.port_names.intern(&p.name);
        }
    }

    fn bump(&mut self) {
        self.serial = self.serial.wrapping_add(1).max(1);
        self.generation += 1;
    }

    pub fn upsert_service(&mut self, svc: &Service) {
        let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
            return;
        };
        let mut rec = service_rec(svc);
        self.remove_service(ns, name);
        self.share_names(&mut rec.ports);
        let (ns, name) = (self.namespace_key(ns), lower(name));
        if let SvcKind::ClusterIp(ips) = &rec.kind {
            for ip in ips.iter() {
                self.service_ips.add(*ip, (ns.clone(), name.clone()));
            }
        }
        let space = self.namespaces.entry(ns).or_default();
        space.services.insert(name, rec);
        self.bump();
    }

    pub fn remove_service(&mut self, ns: &str, name: &str) {
        let (ns, name) = (ns.to_ascii_lowercase(), name.to_ascii_lowercase());
        let Some(space) = self.namespaces.get_mut(ns.as_str()) else {
            return;
        };
        let Some(old) = space.services.remove(name.as_str()) else {
            return;
        };
        if let SvcKind::ClusterIp(ips) = &old.kind {
            for ip in ips.iter() {
                self.service_ips.remove(ip, &ns, &name);
            }
        }
        let names = port_names(&old.ports);
        drop(old);
        self.port_names.release(names);
        if space.is_empty() {
            self.namespaces.remove(ns.as_str());
        }
        self.bump();
    }

    pub fn upsert_slice(&mut self, slice: &EndpointSlice) {
        let (Some(ns), Some(name)) = (&slice.metadata.namespace, &slice.metadata.name) else {
            return;
        };
        self.remove_slice(ns, name);
        let Some(mut rec) = slice_rec(slice) else {
            return;
        };
        self.share_names(&mut rec.ports);
        let (ns, name) = (self.namespace_key(ns), lower(name));
        for ep in rec.endpoints.iter() {
            for ip in ep.addrs.iter() {
                self.endpoint_ips.add(*ip, (ns.clone(), name.clone()));
            }
        }
        let space = self.namespaces.entry(ns).or_default();
        let owned = space
            .by_service
            .entry(rec.service.clone())
            .or_insert_with(one);
        owned.push(name.clone());
        space.slices.insert(name, rec);
        self.bump();
    }

    pub fn remove_slice(&mut self, ns: &str, name: &str) {
        let (ns, name) = (ns.to_ascii_lowercase(), name.to_ascii_lowercase());
        let Some(space) = self.namespaces.get_mut(ns.as_str()) else {
            return;
        };
        let Some(old) = space.slices.remove(name.as_str()) else {
            return;
        };
        if let Some(owned) = space.by_service.get_mut(&old.service) {
            owned.retain(|n| **n != *name);
            if owned.is_empty() {
                space.by_service.remove(&old.service);
            }
        }
        for ep in old.endpoints.iter() {
            for ip in ep.addrs.iter() {
                self.endpoint_ips.remove(ip, &ns, &name);
            }
        }
        if space.is_empty() {
            self.namespaces.remove(ns.as_str());
        }
        let names = port_names(&old.ports);
        drop(old);
        self.port_names.release(names);
        self.bump();
    }
}

/// `name` in wire form without its root label, lowercased.
fn wire_labels(name: &Name) -> Box<[u8]> {
    let mut out = Vec::new();
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.into()
}

fn port_names(ports: &[PortRec]) -> Vec<Arc<str>> {
    ports.iter().map(|p| p.name.clone()).collect()
}

fn one<T>() -> Vec<T> {
    Vec::with_capacity(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ready, service, slice};
    use serde_json::json;

    #[test]
    fn a_bad_zone_is_an_error_not_a_panic() {
        for zone in ["", ".", "a..b", "bad zone", &"x".repeat(64)] {
            let err = ClusterView::new(zone).unwrap_err();
            assert_eq!(err.zone, zone);
        }
    }

    #[test]
    fn upsert_replace_and_remove_keep_indexes_clean() {
        let mut v = ClusterView::new("cluster.local").unwrap();
        let ip: IpAddr = "10.96.0.7".parse().unwrap();
        v.upsert_service(&service(
            "Default",
            "Web",
            json!({"clusterIP": "10.96.0.7"}),
        ));
        assert_eq!(v.service_ips.get(&ip).map(|o| o.as_slice().len()), Some(1));
        assert!(v.service("default", "web").is_some());

        // Re-upsert with a new IP moves the reverse entry.
        v.upsert_service(&service(
            "default",
            "web",
            json!({"clusterIP": "10.96.0.8"}),
        ));
        assert!(v.service_ips.get(&ip).is_none());
        assert_eq!(v.service_ips.len(), 1);

        let s = slice(
            "default",
            "web-1",
            "web",
            "IPv4",
            json!([]),
            ready(&[("10.244.0.2", None)]),
        );
        v.upsert_slice(&s);
        v.upsert_slice(&s);
        assert_eq!(v.endpoint_ips.len(), 1);
        assert_eq!(v.namespaces["default"].by_service["web"].len(), 1);

        v.remove_slice("default", "web-1");
        v.remove_service("default", "web");
        assert!(v.namespaces.is_empty());
        assert!(v.service_ips.is_empty());
        assert!(v.endpoint_ips.is_empty());
    }

    #[test]
    fn namespace_existence() {
        let mut v = ClusterView::new("cluster.local.").unwrap();
        assert_eq!(v.zone().to_ascii(), "cluster.local.");
        assert!(!v.namespace_exists("default"));
        v.upsert_service(&service("default", "a", json!({"clusterIP": "10.0.0.1"})));
        assert!(v.namespace_exists("default"));
        v.add_namespace("Empty");
        assert!(v.namespace_exists("empty"));
        v.remove_namespace("empty");
        assert!(!v.namespace_exists("empty"));
    }

    #[test]
    fn serial_moves_on_change() {
        let mut v = ClusterView::new("cluster.local").unwrap();
        let s0 = v.serial();
        v.upsert_service(&service("default", "a", json!({"clusterIP": "10.0.0.1"})));
        assert!(v.serial() > s0);
        let s1 = v.serial();
        v.remove_service("default", "missing");
        assert_eq!(v.serial(), s1, "no-op removal keeps the serial");
    }

    /// The per-Service footprint is what makes 10k+ Services cheap; keep it small.
    #[test]
    fn records_stay_compact() {
        use crate::model::{EndpointRec, PortRec, ServiceRec};
        use std::mem::size_of;
        assert!(size_of::<ServiceRec>() <= 48, "{}", size_of::<ServiceRec>());
        assert!(size_of::<PortRec>() <= 24, "{}", size_of::<PortRec>());
        assert!(
            size_of::<EndpointRec>() <= 40,
            "{}",
            size_of::<EndpointRec>()
        );
        let mut v = ClusterView::new("cluster.local").unwrap();
        v.upsert_service(&service("default", "a", json!({"clusterIP": "10.0.0.1"})));
        let ip = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            v.service_ips.get(&ip),
            Some(crate::compact::Owners::One(_))
        ));
    }

    #[test]
    fn services_share_namespace_and_port_names() {
        let mut v = ClusterView::new("cluster.local").unwrap();
        for (name, ip, port) in [("b", "10.0.0.2", "http"), ("c", "10.0.0.3", "HTTP")] {
            let spec = json!({"clusterIP": ip, "ports": [{"name": port, "port": 80}]});
            v.upsert_service(&service("default", name, spec));
        }
        let port = |svc: &str| v.namespaces["default"].services[svc].ports[0].name.clone();
        assert!(Arc::ptr_eq(&port("b"), &port("c")));
        let owner_ns = |ip: &str| {
            v.service_ips.get(&ip.parse().unwrap()).unwrap().as_slice()[0]
                .0
                .clone()
        };
        assert!(Arc::ptr_eq(&owner_ns("10.0.0.2"), &owner_ns("10.0.0.3")));
        v.remove_service("default", "b");
        assert_eq!(v.port_names.len(), 1);
        v.remove_service("default", "c");
        assert_eq!(v.port_names.len(), 0, "names go with their last Service");
    }

    #[test]
    fn nameserver_addrs_default_to_kube_dns() {
        let mut v = ClusterView::new("cluster.local").unwrap();
        assert!(v.nameserver_addrs().is_empty());
        v.upsert_service(&service(
            "kube-system",
            "kube-dns",
            json!({"clusterIP": "10.96.0.10"}),
        ));
        assert_eq!(
            v.nameserver_addrs(),
            vec!["10.96.0.10".parse::<IpAddr>().unwrap()]
        );
        v.set_ns_addrs(vec!["10.0.0.53".parse().unwrap()]);
        assert_eq!(
            v.nameserver_addrs(),
            vec!["10.0.0.53".parse::<IpAddr>().unwrap()]
        );
    }
}
