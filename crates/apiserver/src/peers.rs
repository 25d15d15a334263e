//! The API servers of one cluster find each other, as kube-apiserver's lease endpoint reconciler
//! (`--endpoint-reconciler-type=lease`) does: each server keeps a Lease
//! `kube-system/apiserver-<ip>-<port>` renewed every [`Timing::interval`], and on each pass
//! writes the `default/kubernetes` Endpoints and EndpointSlice to list exactly the servers whose
//! Lease is current. A server that stops cleanly removes itself at once (the last one too,
//! leaving them empty, as kube-apiserver's `RemoveEndpoints` does); one that dies drops out
//! when its Lease runs out (and the Lease is deleted then, as kube-apiserver's identity-lease
//! collector does). The choice is [`live`], a pure function of the Leases and the clock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kinet_store::Mutation;
use kinet_types::registry::{lookup, Resource};
use kinet_types::wellknown::SERVICE_NAME_LABEL;
use kinet_types::Result;
use serde_json::{json, Value};

use crate::rest::{collection_prefix, object_key, Api};

/// The label kube-apiserver puts on its identity Leases.
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// Where a server's Lease records the address it serves on (a Lease has no field for it).
pub const ADDRESS_ANNOTATION: &str = "kinet.dev/advertise-address";
const NAMESPACE: &str = "kube-system";
const NAME_PREFIX: &str = "apiserver-";
const JOIN_ATTEMPTS: usize = 5;

/// How long a Lease holds and how often it is renewed (kube-apiserver's master lease TTL and
/// endpoint reconcile interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease: Duration,
    pub interval: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            lease: Duration::from_secs(15),
            interval: Duration::from_secs(10),
        }
    }
}

/// A server as its Lease shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub lease: String,
    pub address: SocketAddr,
    pub renewed: DateTime<Utc>,
    pub duration: Duration,
}

/// The name of the Lease of the server serving on `address`.
pub fn lease_name(address: SocketAddr) -> String {
    format!("{NAME_PREFIX}{}-{}", address.ip(), address.port())
}

/// The server a Lease describes; `None` for any other Lease.
pub fn peer(lease: &Value) -> Option<Peer> {
    let meta = &lease["metadata"];
    if meta["labels"][IDENTITY_LABEL] != "kube-apiserver" {
        return None;
    }
    let spec = &lease["spec"];
    Some(Peer {
        lease: meta["name"].as_str()?.to_string(),
        address: meta["annotations"][ADDRESS_ANNOTATION]
            .as_str()?
            .parse()
            .ok()?,
        renewed: spec["renewTime"].as_str()?.parse().ok()?,
        duration: Duration::from_secs(spec["leaseDurationSeconds"].as_u64()?),
    })
}

/// Whether `peer`'s Lease has run out at `now`.
pub fn expired(peer: &Peer, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(peer.duration).is_ok_and(|d| peer.renewed + d < now)
}

/// The addresses the `kubernetes` Endpoints list: every server on `port` whose Lease is
/// current, sorted, loopback left out (validation refuses it as an endpoint, as it refuses
/// kube-apiserver's loopback `--advertise-address`: pods could not reach it).
pub fn live(peers: &[Peer], port: u16, now: DateTime<Utc>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = peers
        .iter()
        .filter(|p| p.address.port() == port && !expired(p, now))
        .map(|p| p.address.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The `kubernetes` Endpoints and EndpointSlice listing `ips`, all on `port`.
pub fn endpoints(ips: &[IpAddr], port: u16) -> (Value, Value) {
    let labels = json!({SERVICE_NAME_LABEL: "kubernetes", "endpointslice.kubernetes.io/managed-by": "kinet-apiserver"});
    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    // A subset needs an address, so none is no subset (as kube-apiserver repacks it).
    let subsets = match addresses.is_empty() {
        true => json!([]),
        false => {
            json!([{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}])
        }
    };
    let eps = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "addressType": if ips.first().is_some_and(IpAddr::is_ipv6) { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    (eps, slice)
}

fn leases() -> &'static Resource {
    lookup("coordination.k8s.io", "v1", "leases").expect("leases are served")
}

/// The Lease after a renewal: `current` with the renew time and duration of `fresh`, or
/// `fresh` itself when there is none.
fn renewed(current: Option<&Value>, fresh: Value) -> Value {
    let Some(current) = current else {
        return fresh;
    };
    let mut next = current.clone();
    for field in ["renewTime", "leaseDurationSeconds"] {
        next["spec"][field] = fresh["spec"][field].clone();
    }
    next
}

/// Deletes a Lease read at `rv` only if it is still that one (kube-apiserver's delete
/// preconditions): a peer that renewed since keeps it, and a gone one stays gone.
fn unless_changed(current: Option<&Value>, rv: u64) -> Mutation {
    match current {
        Some(c) if c["metadata"]["resourceVersion"] == rv.to_string().as_str() => Mutation::Delete,
        _ => Mutation::Unchanged,
    }
}

fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One server's part: its Lease and the `kubernetes` endpoints.
#[derive(Debug, Clone)]
pub struct Reconciler {
    address: SocketAddr,
    timing: Timing,
}

impl Reconciler {
    /// For the server serving on `address` (its advertised address).
    pub fn new(address: SocketAddr, timing: Timing) -> Reconciler {
        Reconciler { address, timing }
    }

    /// Renews this server's Lease, then deletes the Leases that ran out and writes the
    /// endpoints from every current one. A Lease that fails to go is logged and left to the
    /// next pass: the endpoints do not wait for it.
    pub async fn pass(&self, api: &Api) -> Result<()> {
        self.renew(api).await?;
        let now = Utc::now();
        let (stored, _) = api
            .store
            .list(&collection_prefix(leases(), Some(NAMESPACE)));
        let peers: Vec<(u64, Peer)> = stored
            .iter()
            .filter_map(|s| Some((s.rv, peer(&s.value)?)))
            .collect();
        for (rv, gone) in peers.iter().filter(|(_, p)| expired(p, now)) {
            tracing::info!(lease = %gone.lease, address = %gone.address, "an API server's Lease ran out");
            let key = object_key(leases(), Some(NAMESPACE), &gone.lease);
            let rv = *rv;
            match api
                .store
                .write(&key, move |c| Ok(unless_changed(c, rv)))
                .await
            {
                // Another server changed it first: renewed, or deleted by its own pass.
                Err(e) if e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(lease = %gone.lease, error = %e.message, "deleting a Lease that ran out")
                }
                Ok(_) => {}
            }
        }
        let peers: Vec<Peer> = peers.into_iter().map(|(_, p)| p).collect();
        let ips = live(&peers, self.address.port(), now);
        // None current, though this server just renewed its own: an unreachable address
        // (loopback), so there is nothing better to write.
        if ips.is_empty() {
            return Ok(());
        }
        self.advertise(api, &ips).await
    }

    /// The first pass, at start. Another server's write may win a compare-and-swap (409):
    /// then again, a few times; failing still, the periodic passes take over.
    pub async fn join(&self, api: &Api) {
        for attempt in 1..=JOIN_ATTEMPTS {
            match self.pass(api).await {
                Ok(()) => return,
                Err(e) if e.code == 409 && attempt < JOIN_ATTEMPTS => continue,
                Err(e) => {
                    tracing::warn!(error = %e.message, "joining the kubernetes endpoints");
                    return;
                }
            }
        }
    }

    /// A clean stop (kube-apiserver's `RemoveEndpoints`): this server deletes its Lease and
    /// leaves the endpoints, the last one too, leaving them empty: nothing serves then.
    pub async fn leave(&self, api: &Api) -> Result<()> {
        let me = lease_name(self.address);
        let key = object_key(leases(), Some(NAMESPACE), &me);
        let deleted = api.store.write(&key, |_| Ok(Mutation::Delete)).await;
        let (stored, _) = api
            .store
            .list(&collection_prefix(leases(), Some(NAMESPACE)));
        // Its own Lease left out even when the delete failed: this server is gone either way.
        let peers: Vec<Peer> = stored
            .iter()
            .filter_map(|s| peer(&s.value))
            .filter(|p| p.lease != me)
            .collect();
        let written = self
            .advertise(api, &live(&peers, self.address.port(), Utc::now()))
            .await;
        deleted.and(written)
    }

    /// Passes every interval until the task is dropped; a failed pass is logged and retried
    /// at the next (another server's write may have won the compare-and-swap).
    pub async fn run(self, api: std::sync::Arc<Api>) {
        loop {
            tokio::time::sleep(self.timing.interval).await;
            if let Err(e) = self.pass(&api).await {
                tracing::warn!(error = %e.message, "reconciling the kubernetes endpoints");
            }
        }
    }

    /// Renews this server's Lease, or makes it again when it is gone (deleted by a user, or by
    /// a server that saw it run out), in one write so a delete in between cannot skip it.
    async fn renew(&self, api: &Api) -> Result<()> {
        let name = lease_name(self.address);
        let key = object_key(leases(), Some(NAMESPACE), &name);
        let now = micro_time(Utc::now());
        let mut fresh = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NAMESPACE,
                "labels": {IDENTITY_LABEL: "kube-apiserver"},
                "annotations": {ADDRESS_ANNOTATION: self.address.to_string()}},
            "spec": {"holderIdentity": name, "acquireTime": now, "renewTime": now,
                "leaseDurationSeconds": self.timing.lease.as_secs()},
        });
        api.prepare_new(leases(), &mut fresh, Some(NAMESPACE))?;
        let fresh = crate::rest::stored_form(leases(), fresh)?;
        api.store
            .write(&key, move |current| {
                Ok(Mutation::Put(renewed(current, fresh)))
            })
            .await
            .map(drop)
    }

    /// Rewrites the `kubernetes` endpoints to `ips`.
    async fn advertise(&self, api: &Api, ips: &[IpAddr]) -> Result<()> {
        let (eps, slice) = endpoints(ips, self.address.port());
        crate::bootstrap::reconcile(api, "", "endpoints", eps, &["subsets"]).await?;
        crate::bootstrap::reconcile(
            api,
            "discovery.k8s.io",
            "endpointslices",
            slice,
            &["addressType", "endpoints", "ports"],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServeConfig;
    use std::sync::Arc;

    fn at(addr: &str, renewed: &str) -> Peer {
        Peer {
            lease: lease_name(addr.parse().unwrap()),
            address: addr.parse().unwrap(),
            renewed: renewed.parse().unwrap(),
            duration: Duration::from_secs(15),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:30Z".parse().unwrap()
    }

    #[test]
    fn only_current_reachable_servers_on_the_port_are_live() {
        let peers = [
            at("172.18.255.1:6443", "2026-01-01T00:00:20Z"),
            at("172.18.0.1:6443", "2026-01-01T00:00:29Z"),
            // Ran out 1 s ago.
            at("172.18.255.2:6443", "2026-01-01T00:00:14Z"),
            at("127.0.0.1:6443", "2026-01-01T00:00:29Z"),
            at("172.18.255.3:7000", "2026-01-01T00:00:29Z"),
            // Twice the same address (a restart under another Lease).
            at("172.18.0.1:6443", "2026-01-01T00:00:25Z"),
        ];
        let ips: Vec<String> = live(&peers, 6443, now())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["172.18.0.1", "172.18.255.1"]);
        assert!(expired(&peers[2], now()));
        assert!(!expired(&peers[0], now()));
    }

    #[test]
    fn a_lease_reads_back_as_its_server() {
        let lease = json!({
            "metadata": {"name": "apiserver-172.18.0.1-6443",
                "labels": {IDENTITY_LABEL: "kube-apiserver"},
                "annotations": {ADDRESS_ANNOTATION: "172.18.0.1:6443"}},
            "spec": {"renewTime": "2026-01-01T00:00:20.000000Z", "leaseDurationSeconds": 15},
        });
        assert_eq!(
            peer(&lease),
            Some(at("172.18.0.1:6443", "2026-01-01T00:00:20Z"))
        );
        assert_eq!(
            lease_name("172.18.0.1:6443".parse().unwrap()),
            "apiserver-172.18.0.1-6443"
        );
        // The controller-manager's Lease is no server.
        let mut other = lease.clone();
        other["metadata"]["labels"] = json!({});
        assert_eq!(peer(&other), None);
    }

    #[test]
    fn endpoints_list_every_address_on_the_one_port() {
        let ips = [
            "172.18.0.1".parse().unwrap(),
            "172.18.255.1".parse().unwrap(),
        ];
        let (eps, slice) = endpoints(&ips, 6443);
        assert_eq!(
            eps["subsets"],
            json!([{"addresses": [{"ip": "172.18.0.1"}, {"ip": "172.18.255.1"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["endpoints"][1]["addresses"][0], "172.18.255.1");
        assert_eq!(
            slice["metadata"]["labels"][SERVICE_NAME_LABEL],
            "kubernetes"
        );
    }

    #[test]
    fn a_renewal_moves_the_times_and_makes_a_gone_lease_again() {
        let fresh = json!({"metadata": {"name": "apiserver-172.18.0.1-6443", "uid": "new"},
            "spec": {"acquireTime": "t2", "renewTime": "t2", "leaseDurationSeconds": 15}});
        // Deleted meanwhile: made again, whole.
        assert_eq!(renewed(None, fresh.clone()), fresh);
        let current = json!({"metadata": {"name": "apiserver-172.18.0.1-6443", "uid": "old"},
            "spec": {"acquireTime": "t0", "renewTime": "t1", "leaseDurationSeconds": 10}});
        assert_eq!(
            renewed(Some(&current), fresh),
            json!({"metadata": {"name": "apiserver-172.18.0.1-6443", "uid": "old"},
                "spec": {"acquireTime": "t0", "renewTime": "t2", "leaseDurationSeconds": 15}})
        );
    }

    #[test]
    fn a_lease_that_ran_out_goes_only_as_it_was_read() {
        let at_rv = |rv: &str| json!({"metadata": {"name": "l", "resourceVersion": rv}});
        assert_eq!(unless_changed(Some(&at_rv("7")), 7), Mutation::Delete);
        // Renewed since it was read: the peer keeps it.
        assert_eq!(unless_changed(Some(&at_rv("9")), 7), Mutation::Unchanged);
        // Already gone (another server's pass): nothing to do.
        assert_eq!(unless_changed(None, 7), Mutation::Unchanged);
    }

    #[test]
    fn no_address_is_no_subset() {
        let (eps, slice) = endpoints(&[], 6443);
        assert_eq!(eps["subsets"], json!([]));
        assert_eq!(slice["endpoints"], json!([]));
    }

    fn api_at(dir: &std::path::Path, listen: &str, etcd: Option<&str>) -> Arc<Api> {
        crate::open_api(&ServeConfig {
            authorization: true,
            cluster: "t".into(),
            data_dir: dir.to_path_buf(),
            etcd: etcd.map(|url| kinet_store::EtcdConfig::parse(url).unwrap()),
            listen: vec![listen.parse().unwrap()],
            ca_cert_pem: String::new(),
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
            service_account_key_file: dir.join(crate::tokenrequest::KEY_FILE),
            tokens: vec![],
            admission: Default::default(),
            metrics: None,
            health: Default::default(),
        })
        .unwrap()
    }

    fn stored(api: &Api, group: &str, plural: &str) -> Value {
        let r = lookup(group, "v1", plural).unwrap();
        api.store
            .get(&object_key(r, Some("default"), "kubernetes"))
            .expect("stored")
            .value
            .clone()
    }

    fn listed(api: &Api) -> (Vec<String>, Vec<String>) {
        let eps = stored(api, "", "endpoints");
        let slice = stored(api, "discovery.k8s.io", "endpointslices");
        let ips = |list: &Value, field: &str| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|a| a.pointer(field).unwrap().as_str().unwrap().to_string())
                .collect()
        };
        let addresses = match eps["subsets"].as_array().unwrap().as_slice() {
            [] => json!([]),
            [only] => only["addresses"].clone(),
            more => panic!("one subset expected: {more:?}"),
        };
        (
            ips(&addresses, "/ip"),
            ips(&slice["endpoints"], "/addresses/0"),
        )
    }

    async fn joined(api: &Api, address: &str, timing: Timing) -> Reconciler {
        crate::bootstrap::run(api, 6443).await.unwrap();
        let r = Reconciler::new(address.parse().unwrap(), timing);
        r.pass(api).await.unwrap();
        r
    }

    #[tokio::test]
    async fn a_single_server_advertises_its_address_and_follows_a_move() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        {
            let api = api_at(&dir, "172.18.0.1:6443", None);
            let r = joined(&api, "172.18.0.1:6443", Timing::default()).await;
            assert_eq!(
                listed(&api),
                (vec!["172.18.0.1".into()], vec!["172.18.0.1".into()])
            );
            r.pass(&api).await.unwrap();
            // The last server stopping leaves nothing listed: nothing serves.
            r.leave(&api).await.unwrap();
            assert_eq!(listed(&api), (vec![], vec![]));
            let lease = object_key(leases(), Some(NAMESPACE), &lease_name(r.address));
            assert!(api.store.get(&lease).is_none());
        }
        // A restart advertising another address replaces it.
        let api = api_at(&dir, "172.19.0.1:6443", None);
        joined(&api, "172.19.0.1:6443", Timing::default()).await;
        assert_eq!(
            listed(&api),
            (vec!["172.19.0.1".into()], vec!["172.19.0.1".into()])
        );
        // Loopback is never advertised.
        let other = tmp.path().join("other");
        let api = api_at(&other, "127.0.0.1:6443", None);
        joined(&api, "127.0.0.1:6443", Timing::default()).await;
        let r = lookup("", "v1", "endpoints").unwrap();
        assert!(api
            .store
            .get(&object_key(r, Some("default"), "kubernetes"))
            .is_none());
    }

    /// Polls `f` until it holds, for up to 20 s.
    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_on_one_etcd_list_exactly_the_live_ones() {
        let etcd = kinet_testkit::etcd::EtcdCluster::start(1).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let timing = Timing {
            lease: Duration::from_secs(2),
            interval: Duration::from_millis(200),
        };
        let a = api_at(&tmp.path().join("a"), "172.18.0.1:6443", Some(&etcd.url()));
        let b = api_at(
            &tmp.path().join("b"),
            "172.18.255.1:6443",
            Some(&etcd.url()),
        );
        let c = api_at(
            &tmp.path().join("c"),
            "172.18.255.2:6443",
            Some(&etcd.url()),
        );
        let ra = joined(&a, "172.18.0.1:6443", timing).await;
        let rb = joined(&b, "172.18.255.1:6443", timing).await;
        let rc = joined(&c, "172.18.255.2:6443", timing).await;
        let tasks: Vec<_> = [(ra.clone(), &a), (rb, &b), (rc.clone(), &c)]
            .into_iter()
            .map(|(r, api)| tokio::spawn(r.run(api.clone())))
            .collect();
        let all = ["172.18.0.1", "172.18.255.1", "172.18.255.2"];
        eventually("every server listed, as each sees it", || {
            [&a, &b, &c]
                .iter()
                .all(|api| listed(api).0 == all && listed(api).1 == all)
        })
        .await;

        // b dies without a word (its task stops renewing): it drops out once its Lease runs
        // out, and its Lease goes.
        tasks[1].abort();
        eventually("the dead server dropped", || {
            listed(&a).0 == ["172.18.0.1", "172.18.255.2"]
                && listed(&c).1 == ["172.18.0.1", "172.18.255.2"]
        })
        .await;
        let b_lease = object_key(
            leases(),
            Some(NAMESPACE),
            &lease_name("172.18.255.1:6443".parse().unwrap()),
        );
        eventually("the dead server's Lease deleted", || {
            a.store.get(&b_lease).is_none()
        })
        .await;

        // c stops cleanly: gone at once, without waiting for its Lease.
        tasks[2].abort();
        rc.leave(&c).await.unwrap();
        assert_eq!(listed(&c).0, ["172.18.0.1"]);
        eventually("the stopped server dropped", || {
            listed(&a).0 == ["172.18.0.1"]
        })
        .await;

        // The last one stops cleanly: nothing is listed, and no Lease is left.
        tasks[0].abort();
        ra.leave(&a).await.unwrap();
        assert_eq!(listed(&a), (vec![], vec![]));
        let (left, _) = a.store.list(&collection_prefix(leases(), Some(NAMESPACE)));
        assert!(left.iter().all(|s| peer(&s.value).is_none()), "{left:?}");
    }

    #[tokio::test]
    async fn a_pass_makes_its_lease_again_and_drops_a_peer_that_ran_out() {
        let tmp = tempfile::tempdir().unwrap();
        let api = api_at(tmp.path(), "172.18.0.1:6443", None);
        let r = joined(&api, "172.18.0.1:6443", Timing::default()).await;
        let mine = object_key(leases(), Some(NAMESPACE), &lease_name(r.address));
        // A user deletes this server's Lease, and a peer's ran out long ago.
        api.store
            .write(&mine, |_| Ok(Mutation::Delete))
            .await
            .unwrap();
        let theirs = Reconciler::new("172.18.255.1:6443".parse().unwrap(), Timing::default());
        theirs.renew(&api).await.unwrap();
        let their_key = object_key(leases(), Some(NAMESPACE), &lease_name(theirs.address));
        api.store
            .write(&their_key, |c| {
                let mut old = c.unwrap().clone();
                old["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
                Ok(Mutation::Put(old))
            })
            .await
            .unwrap();
        r.pass(&api).await.unwrap();
        assert!(api.store.get(&mine).is_some(), "own Lease made again");
        assert!(api.store.get(&their_key).is_none(), "run-out Lease deleted");
        assert_eq!(listed(&api).0, ["172.18.0.1"]);
    }
}
