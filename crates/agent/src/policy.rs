//! The node's NetworkPolicy enforcer: reflectors on NetworkPolicies, Pods and Namespaces;
//! every burst of changes hands the objects whose resource version moved to this node's
//! incremental compiler (`kinet_policy::Compiler`), which recompiles only what they touch,
//! and sends the kernel one transaction over nfnetlink with what changed (set and map
//! elements when a pod came, went or was relabelled; sets, chains and counters added or
//! removed in place when policies were). Every 30 s a resync reloads the whole
//! table if anyone else committed in the namespace since (the ruleset generation says so);
//! a failure is followed by a whole load. A refused policy is a Warning Event on it, a
//! refused transaction one on the Node.
//!
//! The table filters the forward and input hooks at priority `filter`, after the proxy's
//! DNAT (`dstnat`), so policies see the pod addresses behind a Service. Packets the node
//! sends itself (kubelet probes) take the output hook and are never filtered, as upstream
//! plugins allow them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_controllers::events::{object_ref, EventType, Recorder};
use kinet_policy::{Cluster, Compiler, Update};
use kinet_proxy::netlink::{NetlinkError, NftSocket};
use kinet_proxy::reflect::{spawn_reflector, Changes, Tasks};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

/// The enforcer's counters, served beside the proxy's. Durations in microseconds.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    syncs: AtomicU64,
    failures: AtomicU64,
    whole_loads: AtomicU64,
    last_sync_micros: AtomicU64,
    last_programming_micros: AtomicU64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl PolicyMetrics {
    fn record(&self, whole: bool, sync: Duration, programming: Option<Duration>) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if whole {
            self.whole_loads.fetch_add(1, Ordering::Relaxed);
        }
        self.last_sync_micros.store(micros(sync), Ordering::Relaxed);
        if let Some(p) = programming {
            self.last_programming_micros
                .store(micros(p), Ordering::Relaxed);
        }
    }
}

impl kinet_proxy::MetricsSource for PolicyMetrics {
    fn prometheus_text(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = |a: &AtomicU64| (get(a) as f64 / 1e6).to_string();
        let lines = [
            (
                "kinet_policy_sync_total",
                "counter",
                "Policy table transactions committed.",
                get(&self.syncs).to_string(),
            ),
            (
                "kinet_policy_sync_failures_total",
                "counter",
                "Policy table transactions that failed.",
                get(&self.failures).to_string(),
            ),
            (
                "kinet_policy_whole_loads_total",
                "counter",
                "Transactions that replaced the whole policy table.",
                get(&self.whole_loads).to_string(),
            ),
            (
                "kinet_policy_last_sync_duration_seconds",
                "gauge",
                "Compile, plan and commit of the last sync.",
                secs(&self.last_sync_micros),
            ),
            (
                "kinet_policy_last_network_programming_seconds",
                "gauge",
                "From a watch event to its policy rules being committed, last sync.",
                secs(&self.last_programming_micros),
            ),
        ];
        for (name, kind, help, value) in lines {
            kinet_proxy::metric_line(&mut out, name, kind, help, value);
        }
        out
    }
}

/// The enforcer of one node.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub node: String,
    pub node_ips: Vec<Ipv4Addr>,
    /// The node's network namespace (`/run/netns/<name>`).
    pub netns: PathBuf,
    /// A change waits this long, collecting the changes after it.
    pub min_sync_period: Duration,
    /// The whole table is reloaded at least this often.
    pub resync_period: Duration,
    pub retry_period: Duration,
    pub metrics: Arc<PolicyMetrics>,
}

impl PolicyConfig {
    pub fn new(node: String, node_ips: Vec<Ipv4Addr>, netns: PathBuf) -> PolicyConfig {
        PolicyConfig {
            node,
            node_ips,
            netns,
            metrics: Arc::default(),
            min_sync_period: Duration::from_millis(10),
            resync_period: Duration::from_secs(30),
            retry_period: Duration::from_secs(1),
        }
    }
}

/// The cluster as the policy model sees it. A policy that cannot be parsed is left out
/// and named in `refused` (the API server's validation makes that rare).
pub fn cluster_view<'a>(
    namespaces: impl Iterator<Item = &'a Namespace>,
    pods: impl Iterator<Item = &'a Pod>,
    policies: impl Iterator<Item = &'a NetworkPolicy>,
) -> (Cluster, Vec<String>) {
    let mut c = Cluster::new();
    for ns in namespaces {
        c.set_namespace(kinet_policy::Namespace::from_k8s(ns));
    }
    for p in pods.filter_map(model_pod) {
        c.set_pod(p);
    }
    let mut refused = Vec::new();
    for np in policies {
        if let Err(e) = c.set_policy(np) {
            refused.push(format!("{}: {e}", key_text(&key(np))));
        }
    }
    (c, refused)
}

/// The pod as policies see it; `None` when it has no address yet or has finished (a
/// finished pod's address may already belong to another pod).
fn model_pod(p: &Pod) -> Option<kinet_policy::Pod> {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    kinet_policy::Pod::from_k8s(p)
}

/// An object's namespace (empty when cluster-scoped) and name.
type Key = (String, String);

fn key<K: Resource>(o: &K) -> Key {
    let m = o.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn key_text((ns, name): &Key) -> String {
    if ns.is_empty() {
        name.clone()
    } else {
        format!("{ns}/{name}")
    }
}

/// The resource versions of the objects of one kind the compiler was last given: each sync
/// hands it only the objects that changed or went.
#[derive(Default)]
struct Seen(HashMap<Key, String>);

impl Seen {
    /// Calls `set` for each object new or changed since the last call, `gone` for each
    /// object no longer there.
    fn diff<K: Resource>(
        &mut self,
        objects: &[Arc<K>],
        mut set: impl FnMut(&K),
        mut gone: impl FnMut(&Key),
    ) {
        let mut before = std::mem::take(&mut self.0);
        for o in objects {
            let k = key(&**o);
            let version = o.meta().resource_version.clone().unwrap_or_default();
            if before.remove(&k).as_ref() != Some(&version) {
                set(o);
            }
            self.0.insert(k, version);
        }
        before.keys().for_each(&mut gone);
    }
}

/// Hands the compiler what changed in the reflectors' stores since the last call.
#[derive(Default)]
struct Feed {
    namespaces: Seen,
    pods: Seen,
    policies: Seen,
}

impl Feed {
    /// The policies refused (they cannot be parsed), with why.
    fn update(
        &mut self,
        compiler: &mut Compiler,
        namespaces: &[Arc<Namespace>],
        pods: &[Arc<Pod>],
        policies: &[Arc<NetworkPolicy>],
    ) -> Vec<(ObjectReference, String)> {
        let c = std::cell::RefCell::new(compiler);
        let mut refused = Vec::new();
        self.namespaces.diff(
            namespaces,
            |n| {
                c.borrow_mut()
                    .set_namespace(kinet_policy::Namespace::from_k8s(n))
            },
            |(_, name)| c.borrow_mut().remove_namespace(name),
        );
        self.pods.diff(
            pods,
            |p| match model_pod(p) {
                Some(p) => c.borrow_mut().set_pod(p),
                None => {
                    let (ns, name) = key(p);
                    c.borrow_mut().remove_pod(&ns, &name)
                }
            },
            |(ns, name)| c.borrow_mut().remove_pod(ns, name),
        );
        self.policies.diff(
            policies,
            |np| {
                if let Err(e) = c.borrow_mut().set_policy(np) {
                    refused.push((object_ref(np), e.to_string()));
                }
            },
            |(ns, name)| c.borrow_mut().remove_policy(ns, name),
        );
        refused
    }
}

/// The Node, as an event's object.
fn node_ref(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        ..ObjectReference::default()
    }
}

/// Logs a warning and records it as an Event on `obj`, in the background.
fn warn(recorder: &Recorder, obj: ObjectReference, reason: &'static str, message: String) {
    let name = obj.name.clone().unwrap_or_default();
    tracing::warn!(object = %name, reason, "{message}");
    let recorder = recorder.clone();
    tokio::spawn(async move {
        recorder
            .publish(&obj, EventType::Warning, reason, &message)
            .await
    });
}

/// Enforces NetworkPolicy on this node until the future is dropped.
pub async fn run(client: Client, cfg: PolicyConfig) -> anyhow::Result<()> {
    let changes = Arc::new(Changes::default());
    let mut tasks = Tasks::default();
    let all = watcher::Config::default();
    let policies = spawn_reflector(
        Api::<NetworkPolicy>::all(client.clone()),
        all.clone(),
        &changes,
        &mut tasks,
    );
    let pods = spawn_reflector(
        Api::<Pod>::all(client.clone()),
        all.clone(),
        &changes,
        &mut tasks,
    );
    let namespaces = spawn_reflector(
        Api::<Namespace>::all(client.clone()),
        all,
        &changes,
        &mut tasks,
    );
    let recorder = Recorder::new(client, "kinet-policy");
    policies.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    namespaces.wait_until_ready().await?;
    tracing::info!(node = %cfg.node, "network policy enforcer synced caches");

    let mut socket: Option<NftSocket> = None;
    let mut compiler = Compiler::new(Cluster::new(), &cfg.node, &cfg.node_ips);
    let mut feed = Feed::default();
    // Whether the kernel holds the compiler's table (else: load it whole).
    let mut loaded = false;
    // The namespace's ruleset generation right after our last commit.
    let mut committed: Option<u32> = None;
    let mut next_resync = Instant::now() + cfg.resync_period;
    let mut first = true;
    loop {
        if !first {
            let deadline = if loaded {
                next_resync
            } else {
                (Instant::now() + cfg.retry_period).min(next_resync)
            };
            tokio::select! {
                _ = changes.wake.notified() => tokio::time::sleep(cfg.min_sync_period).await,
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        first = false;
        if Instant::now() >= next_resync {
            next_resync = Instant::now() + cfg.resync_period;
            // Reload only after someone else's commit in the namespace (the proxy's, a hand
            // edit): the kernel counts every committed transaction.
            let netns = cfg.netns.clone();
            let now;
            (socket, now) = tokio::task::spawn_blocking(move || {
                let g = open(&mut socket, &netns).and_then(|s| s.generation());
                (socket, g)
            })
            .await?;
            if now.ok() != committed {
                loaded = false;
            }
        }
        let since = changes.take();
        let start = Instant::now();
        let refused = feed.update(
            &mut compiler,
            &namespaces.state(),
            &pods.state(),
            &policies.state(),
        );
        for (obj, e) in refused {
            let message = format!("not enforced on node {}: {e}", cfg.node);
            warn(&recorder, obj, "InvalidNetworkPolicy", message);
        }
        let update = if loaded {
            compiler.sync()
        } else {
            Some(Update::Load(compiler.ruleset()))
        };
        let Some(update) = update else {
            continue;
        };
        let netns = cfg.netns.clone();
        let result;
        (socket, result) = tokio::task::spawn_blocking(move || {
            let r = apply(&mut socket, &netns, &update);
            (socket, r.map(|generation| (update, generation)))
        })
        .await?;
        match result {
            Ok((update, generation)) => {
                committed = Some(generation);
                let whole = matches!(update, Update::Load(_));
                let programming = since.map(|t| t.elapsed());
                cfg.metrics.record(whole, start.elapsed(), programming);
                tracing::debug!(node = %cfg.node, whole, took = ?start.elapsed(), ?programming, "network policy rules loaded");
                loaded = true;
            }
            Err(e) => {
                cfg.metrics.failures.fetch_add(1, Ordering::Relaxed);
                let message =
                    format!("network policy rules not loaded, retrying with a whole load: {e}");
                warn(
                    &recorder,
                    node_ref(&cfg.node),
                    "NetworkPolicyNotApplied",
                    message,
                );
                socket = None;
                loaded = false;
                committed = None;
                changes.restore(since);
            }
        }
    }
}

/// The kept socket, opened in `netns` first if needed.
fn open<'a>(
    socket: &'a mut Option<NftSocket>,
    netns: &std::path::Path,
) -> Result<&'a mut NftSocket, NetlinkError> {
    if socket.is_none() {
        *socket = Some(NftSocket::open_in(netns)?);
    }
    Ok(socket.as_mut().expect("opened above"))
}

/// Sends `update` in one transaction; the ruleset generation after it.
fn apply(
    socket: &mut Option<NftSocket>,
    netns: &std::path::Path,
    update: &Update,
) -> Result<u32, NetlinkError> {
    let s = open(socket, netns)?;
    s.apply_policy(update)?;
    s.generation()
}

/// Removes the node's policy table (the agent stopping); absent is fine.
pub fn remove_table(netns: &std::path::Path) -> Result<(), NetlinkError> {
    NftSocket::open_in(netns)?.apply_policy(&Update::Delete(kinet_policy::TABLE.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_proxy::MetricsSource;
    use serde_json::json;

    #[test]
    fn syncs_whole_loads_and_latency_are_exposed() {
        let m = PolicyMetrics::default();
        m.record(
            true,
            Duration::from_millis(3),
            Some(Duration::from_millis(12)),
        );
        m.record(false, Duration::from_micros(500), None);
        let text = m.prometheus_text();
        for want in [
            "kinet_policy_sync_total 2\n",
            "kinet_policy_whole_loads_total 1\n",
            "kinet_policy_last_sync_duration_seconds 0.0005\n",
            "kinet_policy_last_network_programming_seconds 0.012\n",
            "# TYPE kinet_policy_sync_failures_total counter\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }

    fn object<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<K> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pod_at(name: &str, version: &str, tier: &str) -> Arc<Pod> {
        object(json!({
            "metadata": {"namespace": "x", "name": name, "resourceVersion": version,
                         "labels": {"tier": tier}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": format!("10.244.1.{}", name.len())}
        }))
    }

    #[test]
    fn the_feed_hands_over_changes_and_removals_and_names_refused_policies() {
        let mut comp = Compiler::new(Cluster::new(), "n1", &[]);
        let mut feed = Feed::default();
        let deny: Arc<NetworkPolicy> = object(json!({
            "metadata": {"namespace": "x", "name": "web", "resourceVersion": "1"},
            "spec": {"podSelector": {"matchLabels": {"tier": "web"}}}
        }));
        let bad: Arc<NetworkPolicy> = object(json!({
            "metadata": {"namespace": "x", "name": "bad", "resourceVersion": "1"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}
        }));
        let pods = [pod_at("a", "1", "web"), pod_at("bb", "1", "db")];
        let refused = feed.update(&mut comp, &[], &pods, &[deny.clone(), bad.clone()]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0.name.as_deref(), Some("bad"));
        assert_eq!(refused[0].0.kind.as_deref(), Some("NetworkPolicy"));
        let Some(Update::Changes { .. }) = comp.sync() else {
            panic!("the first sync compiles x/a's chain in place");
        };
        // Unchanged versions hand nothing over; a relabel and a removal do.
        assert!(feed
            .update(&mut comp, &[], &pods, &[deny.clone(), bad.clone()])
            .is_empty());
        assert_eq!(comp.sync(), None);
        let moved = [pod_at("a", "2", "db")];
        feed.update(&mut comp, &[], &moved, &[deny]);
        assert!(comp.sync().is_some());
        assert!(comp.ruleset().chains.iter().all(|c| c.hook.is_some()));
        assert_eq!(comp.cluster().pods().len(), 1);
    }

    #[test]
    fn finished_pods_and_unparsable_policies_stay_out_of_the_view() {
        let pod = |name: &str, ip: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"namespace": "x", "name": name},
                "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
                "status": {"phase": phase, "podIP": ip}
            }))
            .unwrap()
        };
        let pods = [
            pod("done", "10.244.1.5", "Succeeded"),
            pod("web", "10.244.1.5", "Running"),
        ];
        let bad: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"namespace": "x", "name": "bad"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}
        }))
        .unwrap();
        let (c, refused) = cluster_view(std::iter::empty(), pods.iter(), [&bad].into_iter());
        let names: Vec<_> = c.pods().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].starts_with("x/bad: "), "{refused:?}");
    }
}
