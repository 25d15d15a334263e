//! ClusterIPs and NodePorts held in the store, so that several API servers on one etcd never
//! hand out the same one. Each allocated number is a key created by compare-and-swap: an IP is
//! an IPAddress object under kube-apiserver's own key (`/registry/networking.k8s.io/ipaddresses/
//! <ip>`, its allocator since 1.31) naming the Service as `parentRef`, and a NodePort a record of
//! the same shape under `/registry/servicenodeports/<port>`. The in-memory [`Allocators`] is
//! this server's cache of them: it picks, the store decides. A number the cache thought free but
//! another server holds is learned from the failed create, and the allocation is tried again.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use kinet_store::Mutation;
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::alloc::Allocators;
use super::meta::now;
use super::services::Holdings;
use super::Api;

const IP_PREFIX: &str = "networking.k8s.io/ipaddresses/";
const PORT_PREFIX: &str = "core/servicenodeports/";

/// How often an allocation is retried after losing numbers to other servers.
const ATTEMPTS: u32 = 16;

/// A claim no Service holds is removed at start once it is this old: younger ones may be
/// another server's allocation whose Service write is still in flight.
const ORPHAN_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// One allocated number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Number {
    Ip(Ipv4Addr),
    Port(u16),
}

impl Number {
    /// Every number `holdings` holds.
    pub fn all(holdings: &Holdings) -> Vec<Number> {
        let ips = holdings.ips.iter().map(|ip| Number::Ip(*ip));
        ips.chain(holdings.ports.iter().map(|p| Number::Port(*p)))
            .collect()
    }

    /// Its claim's store key.
    pub fn key(self) -> String {
        match self {
            Number::Ip(ip) => format!("{IP_PREFIX}{ip}"),
            Number::Port(port) => format!("{PORT_PREFIX}{port}"),
        }
    }

    /// The claim naming `owner` (a Service's store key, `core/services/<ns>/<name>`).
    pub fn claim(self, owner: &str, now: &str) -> Value {
        let (namespace, name) = split_owner(owner);
        let parent =
            json!({"group": "", "resource": "services", "namespace": namespace, "name": name});
        match self {
            Number::Ip(ip) => json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                "metadata": {"name": ip.to_string(), "creationTimestamp": now, "labels": {
                    "ipaddress.kubernetes.io/ip-family": "IPv4",
                    "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
                "spec": {"parentRef": parent},
            }),
            Number::Port(port) => json!({
                "metadata": {"name": port.to_string(), "creationTimestamp": now},
                "spec": {"parentRef": parent},
            }),
        }
    }

    fn learn(self, alloc: &mut Allocators, holder: Option<&str>) {
        match self {
            Number::Ip(ip) => alloc.learn_ip(ip, holder),
            Number::Port(port) => alloc.learn_port(port, holder),
        }
    }
}

/// The owner (Service store key) a stored claim names.
pub fn owner_of(claim: &Value) -> Option<String> {
    let parent = &claim["spec"]["parentRef"];
    Some(format!(
        "core/services/{}/{}",
        parent["namespace"].as_str()?,
        parent["name"].as_str()?
    ))
}

fn split_owner(owner: &str) -> (&str, &str) {
    let mut parts = owner.rsplitn(3, '/');
    let name = parts.next().unwrap_or_default();
    let namespace = parts.next().unwrap_or_default();
    (namespace, name)
}

/// The number a claim's key stands for.
fn number_of(key: &str) -> Option<Number> {
    if let Some(ip) = key.strip_prefix(IP_PREFIX) {
        return ip.parse().ok().map(Number::Ip);
    }
    key.strip_prefix(PORT_PREFIX)?
        .parse()
        .ok()
        .map(Number::Port)
}

/// A claim found in the store at start.
#[derive(Debug)]
struct Found {
    number: Number,
    owner: Option<String>,
    created: Option<DateTime<Utc>>,
}

/// What the start-up repair does, as upstream's repair loops: numbers Services hold get the
/// claim they lack, claims no Service holds go once old enough to be no allocation in flight,
/// the rest are learned, and a Service whose number another owner claimed is reported and left.
#[derive(Debug, Default, PartialEq)]
struct Repair {
    claim: Vec<(Number, String)>,
    remove: Vec<(Number, Option<String>)>,
    learn: Vec<(Number, Option<String>)>,
    /// (number, the Service holding it, the owner its claim names).
    conflicts: Vec<(Number, String, Option<String>)>,
}

/// The repair for `held` (each number and the Services holding it) and the `found` claims.
fn repair(
    mut held: BTreeMap<Number, Vec<String>>,
    found: Vec<Found>,
    cutoff: DateTime<Utc>,
) -> Repair {
    let mut plan = Repair::default();
    for c in found {
        let holders = held.remove(&c.number).unwrap_or_default();
        let named = c.owner.as_ref().is_some_and(|o| holders.contains(o));
        if !named && c.created.is_none_or(|t| t < cutoff) {
            if let Some(first) = holders.first() {
                plan.claim.push((c.number, first.clone()));
                conflicting(&mut plan, c.number, &holders[1..], Some(first));
            }
            plan.remove.push((c.number, c.owner));
            continue;
        }
        conflicting(&mut plan, c.number, &holders, c.owner.as_ref());
        plan.learn.push((c.number, c.owner));
    }
    for (n, holders) in held {
        if let Some(first) = holders.first() {
            plan.claim.push((n, first.clone()));
            conflicting(&mut plan, n, &holders[1..], Some(first));
        }
    }
    plan
}

/// Records each of `holders` other than `owner` as holding `n` without its claim.
fn conflicting(plan: &mut Repair, n: Number, holders: &[String], owner: Option<&String>) {
    for h in holders.iter().filter(|h| Some(*h) != owner) {
        plan.conflicts.push((n, h.clone(), owner.cloned()));
    }
}

impl Api {
    /// Allocates a Service's IPs and ports with `pick` (the in-memory allocation), then claims the
    /// new ones in the store unless `dry`. Returns what was newly granted.
    pub(super) async fn allocate_claimed(
        &self,
        owner: &str,
        obj: &mut Value,
        dry: bool,
        pick: impl Fn(&mut Allocators, &mut Value) -> Result<Holdings>,
    ) -> Result<Holdings> {
        let asked = obj.clone();
        for attempt in 0..ATTEMPTS {
            self.refresh(owner, &Holdings::of(&asked));
            let granted = pick(&mut self.lock_alloc(), obj)?;
            if dry {
                return Ok(granted);
            }
            match self.claim(owner, &granted).await {
                Ok(true) => return Ok(granted),
                Ok(false) => {}
                // The store's view of a claim lagged another server's write: read it again.
                Err(e) if e.reason == "Conflict" => {}
                Err(e) => return Err(e),
            }
            *obj = asked.clone();
            tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
        }
        Err(ApiError::service_unavailable(
            "could not allocate the Service's IPs and ports: other API servers kept taking them",
        ))
    }

    /// Releases `holdings` of `owner`, in this server's cache and in the store.
    pub(super) async fn release(&self, owner: &str, holdings: &Holdings) {
        holdings.release(&mut self.lock_alloc(), owner);
        self.unclaim(owner, &Number::all(holdings)).await;
    }

    /// Releases a dry run's allocation, which was never claimed.
    pub(super) fn release_unclaimed(&self, owner: &str, holdings: &Holdings) {
        holdings.release(&mut self.lock_alloc(), owner);
    }

    fn lock_alloc(&self) -> std::sync::MutexGuard<'_, Allocators> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the cache's view of the numbers a Service asks for up to the store's, so a number
    /// another server released is not refused as taken.
    fn refresh(&self, owner: &str, asked: &Holdings) {
        let numbers = Number::all(asked);
        let held: Vec<_> = numbers
            .iter()
            .map(|n| self.store.get(&n.key()).and_then(|c| owner_of(&c.value)))
            .collect();
        let mut alloc = self.lock_alloc();
        for (n, holder) in numbers.into_iter().zip(held) {
            // This Service's own numbers stay: it may hold them before its claim is written.
            if holder.as_deref() != Some(owner) {
                n.learn(&mut alloc, holder.as_deref());
            }
        }
    }

    /// Claims each of `granted` for `owner`. `Ok(false)`: another server holds one of them;
    /// the cache now says so, and nothing of `granted` stays claimed or allocated.
    async fn claim(&self, owner: &str, granted: &Holdings) -> Result<bool> {
        let numbers = Number::all(granted);
        let mut done = Vec::new();
        let mut outcome = Ok(true);
        for n in &numbers {
            match self.put_claim(*n, owner).await {
                Ok(true) => done.push(*n),
                other => {
                    outcome = other;
                    break;
                }
            }
        }
        if outcome != Ok(true) {
            granted.release(&mut self.lock_alloc(), owner);
            self.unclaim(owner, &done).await;
            let holders: Vec<_> = numbers
                .iter()
                .filter(|n| !done.contains(n))
                .map(|n| {
                    (
                        *n,
                        self.store.get(&n.key()).and_then(|c| owner_of(&c.value)),
                    )
                })
                .collect();
            let mut alloc = self.lock_alloc();
            for (n, holder) in holders.into_iter().filter(|(_, h)| h.is_some()) {
                n.learn(&mut alloc, holder.as_deref());
            }
        }
        outcome
    }

    /// Creates `n`'s claim for `owner` unless it has one: whether it is `owner`'s.
    async fn put_claim(&self, n: Number, owner: &str) -> Result<bool> {
        let (mine, value) = (owner.to_string(), n.claim(owner, &now()));
        let written = self
            .store
            .write(&n.key(), move |now| match now {
                None => Ok(Mutation::Put(value)),
                Some(c) if owner_of(c).as_deref() == Some(&mine) => Ok(Mutation::Unchanged),
                Some(_) => Err(ApiError::new(409, "AlreadyExists", "claimed")),
            })
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if e.reason == "AlreadyExists" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the claims of `numbers` that name `owner`. A failure leaves a claim no Service
    /// holds, which the next start removes.
    async fn unclaim(&self, owner: &str, numbers: &[Number]) {
        for n in numbers {
            self.drop_claim(*n, Some(owner)).await;
        }
    }

    /// Removes `n`'s claim if it names `owner` (`None`: a claim naming no Service).
    async fn drop_claim(&self, n: Number, owner: Option<&str>) {
        let mine = owner.map(str::to_string);
        let removed = self
            .store
            .write(&n.key(), move |now| match now {
                Some(c) if owner_of(c) == mine => Ok(Mutation::Delete),
                _ => Ok(Mutation::Unchanged),
            })
            .await;
        if let Err(e) = removed {
            tracing::warn!(key = %n.key(), error = %e.message, "could not remove a claim");
        }
    }

    /// At start: learns the claims other servers made, claims what stored Services hold (a
    /// store written before claims existed), removes old claims no Service holds, and reports
    /// Services whose number another owner claimed.
    pub async fn reconcile_claims(&self) {
        let services = kinet_types::registry::lookup("", "v1", "services").expect("served");
        let mut held: BTreeMap<Number, Vec<String>> = BTreeMap::new();
        for (key, svc) in self
            .store
            .entries(&super::collection_prefix(services, None))
        {
            for n in Number::all(&Holdings::of(&svc.value)) {
                held.entry(n).or_default().push(key.clone());
            }
        }
        let found = [IP_PREFIX, PORT_PREFIX]
            .into_iter()
            .flat_map(|prefix| self.store.entries(prefix))
            .filter_map(|(key, claim)| {
                let created = claim.value["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                Some(Found {
                    number: number_of(&key)?,
                    owner: owner_of(&claim.value),
                    created: created.map(|t| t.with_timezone(&Utc)),
                })
            })
            .collect();
        let plan = repair(held, found, Utc::now() - ORPHAN_GRACE);
        for (n, owner) in &plan.learn {
            n.learn(&mut self.lock_alloc(), owner.as_deref());
        }
        for (n, owner) in plan.remove {
            tracing::info!(key = %n.key(), ?owner, "removing a claim no Service holds");
            self.drop_claim(n, owner.as_deref()).await;
        }
        for (n, service, owner) in plan.conflicts {
            tracing::warn!(key = %n.key(), %service, ?owner,
                "a Service holds a number another owner has claimed; left as it is");
        }
        for (n, owner) in plan.claim {
            match self.put_claim(n, &owner).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(key = %n.key(), service = %owner,
                    "a Service holds a number another server has just claimed; left as it is"),
                Err(e) => tracing::warn!(key = %n.key(), service = %owner, error = %e.message,
                    "could not claim a Service's number"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_name_their_service_under_kube_apiservers_keys() {
        let ip = Number::Ip(Ipv4Addr::new(10, 96, 0, 7));
        assert_eq!(ip.key(), "networking.k8s.io/ipaddresses/10.96.0.7");
        let claim = ip.claim("core/services/default/web", "2026-01-01T00:00:00Z");
        assert_eq!(claim["kind"], "IPAddress");
        assert_eq!(
            claim["spec"]["parentRef"],
            json!({"group": "", "resource": "services", "namespace": "default", "name": "web"})
        );
        assert_eq!(
            owner_of(&claim).as_deref(),
            Some("core/services/default/web")
        );
        let port = Number::Port(30080);
        assert_eq!(port.key(), "core/servicenodeports/30080");
        assert_eq!(number_of(&port.key()), Some(port));
        assert_eq!(number_of(&ip.key()), Some(ip));
        assert_eq!(number_of("core/servicenodeports/x"), None);
        let holdings = Holdings {
            ips: vec![Ipv4Addr::new(10, 96, 0, 7)],
            ports: vec![30080],
        };
        assert_eq!(Number::all(&holdings), [ip, port]);
    }

    #[test]
    fn the_repair_claims_held_numbers_removes_old_orphans_and_reports_conflicts() {
        let ip = |last| Number::Ip(Ipv4Addr::new(10, 96, 0, last));
        let svc = |name: &str| format!("core/services/default/{name}");
        let at = |t: &str| Some(t.parse::<DateTime<Utc>>().unwrap());
        let (old, young) = (at("2026-01-01T00:00:00Z"), at("2026-01-01T00:05:00Z"));
        let cutoff = at("2026-01-01T00:03:00Z").unwrap();
        let found = |last, owner: Option<&str>, created| Found {
            number: ip(last),
            owner: owner.map(svc),
            created,
        };
        let held = BTreeMap::from([
            (ip(1), vec![svc("a")]),
            (ip(2), vec![svc("b")]),
            (ip(3), vec![svc("c"), svc("d")]),
            (ip(4), vec![svc("e")]),
            (ip(5), vec![svc("f")]),
        ]);
        let claims = vec![
            // Claimed by its Service: learned, however old.
            found(1, Some("a"), old),
            // Held, claimed by another owner: kept while young, reported.
            found(2, Some("x"), young),
            // Held by two Services, one named: the other reported.
            found(3, Some("d"), old),
            // Claimed long ago by a Service that no longer holds it: removed, then claimed.
            found(5, Some("gone"), old),
            // Orphans: the old one and the one naming no Service go, the young one stays.
            found(6, Some("gone"), old),
            found(7, None, None),
            found(8, Some("new"), young),
        ];
        let plan = repair(held, claims, cutoff);
        let own = |name: &str| Some(svc(name));
        assert_eq!(
            plan,
            Repair {
                claim: vec![(ip(5), svc("f")), (ip(4), svc("e"))],
                remove: vec![(ip(5), own("gone")), (ip(6), own("gone")), (ip(7), None)],
                learn: vec![
                    (ip(1), own("a")),
                    (ip(2), own("x")),
                    (ip(3), own("d")),
                    (ip(8), own("new"))
                ],
                conflicts: vec![(ip(2), svc("b"), own("x")), (ip(3), svc("c"), own("d"))],
            }
        );
    }
}
