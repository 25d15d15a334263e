//! ClusterIPs and NodePorts held in the store, so that several API servers on one etcd never
//! hand out the same one. Each allocated number is a key created by compare-and-swap: an IP is
//! an IPAddress object under kube-apiserver's own key (`/registry/networking.k8s.io/ipaddresses/
//! <ip>`, its allocator since 1.31) naming the Service as `parentRef`, and a NodePort a record of
//! the same shape under `/registry/servicenodeports/<port>`. The in-memory [`Allocators`] is
//! this server's cache of them: it picks, the store decides. A number the cache thought free but
//! another server holds is learned from the failed create, and the allocation is tried again.

use std::net::Ipv4Addr;
use std::time::Duration;

use kinet_store::Mutation;
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::alloc::Allocators;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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
                Ok(_) => done.push(*n),
                Err(e) if e.reason == "AlreadyExists" => {
                    outcome = Ok(false);
                    break;
                }
                Err(e) => {
                    outcome = Err(e);
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

    /// Removes the claims of `numbers` that name `owner`. A failure leaves a claim no Service
    /// holds, which the next start removes.
    async fn unclaim(&self, owner: &str, numbers: &[Number]) {
        for n in numbers {
            let mine = owner.to_string();
            let removed = self
                .store
                .write(&n.key(), move |now| match now {
                    Some(c) if owner_of(c).as_deref() == Some(&mine) => Ok(Mutation::Delete),
                    _ => Ok(Mutation::Unchanged),
                })
                .await;
            if let Err(e) = removed {
                tracing::warn!(key = %n.key(), error = %e.message, "could not remove a claim");
            }
        }
    }

    /// At start: learns the claims other servers made, claims what stored Services hold (a
    /// store written before claims existed), and removes old claims no Service holds.
    pub async fn reconcile_claims(&self) {
        let services = kinet_types::registry::lookup("", "v1", "services").expect("served");
        let mut held = std::collections::HashMap::new();
        for (key, svc) in self
            .store
            .entries(&super::collection_prefix(services, None))
        {
            for n in Number::all(&Holdings::of(&svc.value)) {
                held.insert(n.key(), (n, key.clone()));
            }
        }
        let cutoff = chrono::Utc::now() - ORPHAN_GRACE;
        for prefix in [IP_PREFIX, PORT_PREFIX] {
            for (key, claim) in self.store.entries(prefix) {
                let owner = owner_of(&claim.value);
                let Some(n) = number_of(&key) else { continue };
                if held.get(&key).map(|(_, o)| o) == owner.as_ref() {
                    held.remove(&key);
                    continue;
                }
                let created = claim.value["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if created.is_some_and(|t| t < cutoff) {
                    tracing::info!(%key, ?owner, "removing a claim no Service holds");
                    self.unclaim(owner.as_deref().unwrap_or_default(), &[n])
                        .await;
                } else {
                    n.learn(&mut self.lock_alloc(), owner.as_deref());
                }
            }
        }
        for (n, owner) in held.into_values() {
            let value = n.claim(&owner, &now());
            let (mine, key) = (owner.clone(), n.key());
            let claimed = self
                .store
                .write(&key, move |now| match now {
                    None => Ok(Mutation::Put(value)),
                    Some(_) => Ok(Mutation::Unchanged),
                })
                .await;
            if let Err(e) = claimed {
                tracing::warn!(%key, owner = %mine, error = %e.message, "could not claim a Service's number");
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
}
