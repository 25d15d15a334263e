//! The LoadBalancer allocator, like k3s ServiceLB or MetalLB in L2 mode: every Service of type
//! LoadBalancer gets `status.loadBalancer.ingress[0].ip` from an address pool on the underlay.
//! The nodes' proxies announce the address (answer ARP for it); this loop only hands it out.
//!
//! The pool lives in the ConfigMap `kube-system/kinet-loadbalancer` (key `addresses`: ranges
//! `a.b.c.d-e.f.g.h` or CIDRs, comma separated), as MetalLB keeps its pools in the cluster:
//! `kinet serve` writes the default (the top of the underlay, [`default_range`]) only when the
//! ConfigMap is absent, so an edited pool survives restarts. Without it nothing is assigned.
//!
//! One serial loop over reflectors. Each pass rebuilds the assignments from the Services' own
//! status (so an address survives restarts of this loop and of the control plane), then:
//! releases addresses of Services that stopped being LoadBalancers, and gives every
//! LoadBalancer without one `spec.loadBalancerIP` if it is in the pool and free, else the lowest
//! free address. Services with a `spec.loadBalancerClass` belong to another implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kinet_ipam::Ipv4Cidr;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::events::{object_ref, EventType, Recorder};

/// Namespace and name of the ConfigMap holding the pool.
pub const POOL_NAMESPACE: &str = "kube-system";
pub const POOL_CONFIGMAP: &str = "kinet-loadbalancer";
/// Its key listing the addresses.
pub const POOL_KEY: &str = "addresses";

/// How many addresses at the top of the underlay the default pool takes.
pub const DEFAULT_POOL_SIZE: u32 = 64;

/// Inclusive address ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    ranges: Vec<(u32, u32)>,
}

impl Pool {
    /// Parses `a-b` ranges and CIDRs (all addresses of a CIDR but its network and broadcast
    /// addresses when it is wider than /31), comma or whitespace separated.
    pub fn parse(text: &str) -> Result<Pool, String> {
        let mut ranges = Vec::new();
        for part in text
            .split([',', ' ', '\n'])
            .filter(|p| !p.trim().is_empty())
        {
            let part = part.trim();
            let (a, b) = if let Some((a, b)) = part.split_once('-') {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad address in {part:?}"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad address in {part:?}"))?;
                (u32::from(a), u32::from(b))
            } else {
                let c: Ipv4Cidr = part.parse().map_err(|e| format!("{part:?}: {e}"))?;
                let (n, b) = (u32::from(c.network()), u32::from(c.broadcast()));
                if c.prefix() >= 31 {
                    (n, b)
                } else {
                    (n + 1, b - 1)
                }
            };
            if a > b {
                return Err(format!("empty range {part:?}"));
            }
            ranges.push((a, b));
        }
        Ok(Pool { ranges })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
    }

    /// The lowest address not in `used`.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.ranges
            .iter()
            .flat_map(|(a, b)| *a..=*b)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }
}

/// The default pool for an underlay: its last [`DEFAULT_POOL_SIZE`] addresses but the
/// broadcast address (172.18.255.192-172.18.255.254 for 172.18.0.0/16); at most a quarter
/// of a small underlay.
pub fn default_range(underlay: Ipv4Cidr) -> (Ipv4Addr, Ipv4Addr) {
    let broadcast = u32::from(underlay.broadcast());
    let size = DEFAULT_POOL_SIZE.min((underlay.size() / 4) as u32).max(2);
    (
        Ipv4Addr::from(broadcast + 1 - size),
        Ipv4Addr::from(broadcast - 1),
    )
}

/// What one pass decides for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write this address to its status.
    Assign(Ipv4Addr),
    /// Clear its status (no longer a LoadBalancer, or its address left the pool).
    Release,
}

/// The address a Service's status shows, if any.
pub fn status_ip(svc: &Service) -> Option<Ipv4Addr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

fn is_ours(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.as_deref().unwrap_or("").is_empty()
        && svc.metadata.deletion_timestamp.is_none()
}

/// Decisions for every Service that needs a write, keyed by `namespace/name`. Pure.
/// Services are taken oldest first (then by name), so a conflict keeps the older claim.
pub fn plan(services: &[Service], pool: &Pool) -> BTreeMap<String, Decision> {
    let mut svcs: Vec<&Service> = services.iter().collect();
    svcs.sort_by_key(|s| (s.metadata.creation_timestamp.clone(), key(s)));
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    // Keep what is validly held.
    let mut wanting = Vec::new();
    for svc in &svcs {
        let held = status_ip(svc);
        match (is_ours(svc), held) {
            (true, Some(ip)) if pool.contains(ip) && used.insert(ip) => {}
            (true, _) => wanting.push(*svc),
            (false, Some(ip)) if pool.contains(ip) => {
                out.insert(key(svc), Decision::Release);
            }
            (false, _) => {}
        }
    }
    for svc in wanting {
        let asked = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let ip = match asked {
            Some(ip) if pool.contains(ip) && !used.contains(&ip) => Some(ip),
            Some(_) => None,
            None => pool.first_free(&used),
        };
        match ip {
            Some(ip) => {
                used.insert(ip);
                out.insert(key(svc), Decision::Assign(ip));
            }
            // Exhausted, or the asked address is taken: say so by holding nothing.
            None if status_ip(svc).is_some() => {
                out.insert(key(svc), Decision::Release);
            }
            None => {}
        }
    }
    out
}

fn key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Runs the allocator until it fails.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let wake = Arc::new(Notify::new());
    let services = crate::runtime::reflect_and_wake(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &wake,
    );
    let pools = crate::runtime::reflect_and_wake(
        Api::<ConfigMap>::namespaced(client.clone(), POOL_NAMESPACE),
        watcher::Config::default().fields(&format!("metadata.name={POOL_CONFIGMAP}")),
        &wake,
    );
    services.wait_until_ready().await?;
    pools.wait_until_ready().await?;
    let recorder = Recorder::new(client.clone(), "service-lb-controller");
    loop {
        pass(&client, &recorder, &services, &pools).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), wake.notified()).await;
    }
}

fn pool_of(pools: &Store<ConfigMap>) -> Pool {
    let Some(cm) = pools.state().into_iter().next() else {
        return Pool::default();
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(POOL_KEY))
        .cloned()
        .unwrap_or_default();
    Pool::parse(&text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "load balancer pool does not parse; assigning nothing");
        Pool::default()
    })
}

async fn pass(
    client: &Client,
    recorder: &Recorder,
    services: &Store<Service>,
    pools: &Store<ConfigMap>,
) {
    let pool = pool_of(pools);
    // Only LoadBalancers and holders of an address take part: a pass per event must not
    // copy and sort every ClusterIP Service of a large cluster.
    let all: Vec<Service> = services
        .state()
        .iter()
        .filter(|s| is_ours(s) || status_ip(s).is_some())
        .map(|s| (**s).clone())
        .collect();
    let decisions = plan(&all, &pool);
    for svc in all.iter().filter(|s| decisions.contains_key(&key(s))) {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        let status = match &decisions[&key(svc)] {
            Decision::Assign(ip) => json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}),
            Decision::Release => json!({"ingress": null}),
        };
        let patch = json!({"status": {"loadBalancer": status}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(service = %key(svc), decision = ?decisions[&key(svc)], "load balancer status")
            }
            Err(e) => {
                tracing::warn!(service = %key(svc), error = %e, "load balancer status not written")
            }
        }
    }
    // LoadBalancers still without an address: the pool is empty, exhausted or the asked
    // address is unavailable.
    for svc in all
        .iter()
        .filter(|s| is_ours(s) && status_ip(s).is_none() && !decisions.contains_key(&key(s)))
    {
        let message = if pool == Pool::default() {
            format!("no load balancer pool: ConfigMap {POOL_NAMESPACE}/{POOL_CONFIGMAP} is absent or empty")
        } else {
            "no free address in the load balancer pool (or spec.loadBalancerIP is taken or outside it)".to_string()
        };
        recorder
            .publish(
                &object_ref(svc),
                EventType::Warning,
                "AllocationFailed",
                &message,
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(
        name: &str,
        ty: &str,
        asked: Option<&str>,
        held: Option<&str>,
        created: &str,
    ) -> Service {
        let mut v = json!({
            "metadata": {"namespace": "default", "name": name, "creationTimestamp": created},
            "spec": {"type": ty, "ports": [{"port": 80}]},
        });
        if let Some(ip) = asked {
            v["spec"]["loadBalancerIP"] = json!(ip);
        }
        if let Some(ip) = held {
            v["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        }
        serde_json::from_value(v).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ranges_and_cidrs() {
        let p = Pool::parse("10.0.0.10-10.0.0.11, 10.0.1.0/30").unwrap();
        let free = |used: &[&str]| p.first_free(&used.iter().map(|s| ip(s)).collect());
        assert_eq!(free(&[]), Some(ip("10.0.0.10")));
        assert_eq!(free(&["10.0.0.10", "10.0.0.11"]), Some(ip("10.0.1.1")));
        assert_eq!(
            free(&["10.0.0.10", "10.0.0.11", "10.0.1.1", "10.0.1.2"]),
            None
        );
        assert!(Pool::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(Pool::parse("nope").is_err());
        assert_eq!(Pool::parse("").unwrap(), Pool::default());
    }

    #[test]
    fn default_range_is_the_top_of_the_underlay() {
        let (a, b) = default_range("172.18.0.0/16".parse().unwrap());
        assert_eq!((a, b), (ip("172.18.255.192"), ip("172.18.255.254")));
    }

    #[test]
    fn keeps_held_honours_asked_and_releases() {
        let pool = Pool::parse("10.0.0.1-10.0.0.3").unwrap();
        let t = "2026-01-01T00:00:00Z";
        let services = vec![
            svc("held", "LoadBalancer", None, Some("10.0.0.1"), t),
            svc("asks", "LoadBalancer", Some("10.0.0.3"), None, t),
            svc("new", "LoadBalancer", None, None, t),
            svc("was-lb", "ClusterIP", None, Some("10.0.0.2"), t),
            svc("plain", "ClusterIP", None, None, t),
        ];
        let d = plan(&services, &pool);
        assert_eq!(d.get("default/held"), None);
        assert_eq!(d["default/asks"], Decision::Assign(ip("10.0.0.3")));
        assert_eq!(d["default/new"], Decision::Assign(ip("10.0.0.2")));
        assert_eq!(d["default/was-lb"], Decision::Release);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_conflict_keeps_the_older_claim_and_exhaustion_assigns_nothing() {
        let pool = Pool::parse("10.0.0.1-10.0.0.1").unwrap();
        let services = vec![
            svc(
                "young",
                "LoadBalancer",
                None,
                Some("10.0.0.1"),
                "2026-01-02T00:00:00Z",
            ),
            svc(
                "old",
                "LoadBalancer",
                None,
                Some("10.0.0.1"),
                "2026-01-01T00:00:00Z",
            ),
            svc(
                "taken",
                "LoadBalancer",
                Some("10.0.0.1"),
                None,
                "2026-01-03T00:00:00Z",
            ),
        ];
        let d = plan(&services, &pool);
        assert_eq!(d.get("default/old"), None);
        assert_eq!(d["default/young"], Decision::Release);
        assert_eq!(d.get("default/taken"), None);
    }
}
