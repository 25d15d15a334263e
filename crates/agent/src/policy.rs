//! The node's NetworkPolicy enforcer: reflectors on NetworkPolicies, Pods and Namespaces
//! that record the keys their events touch; every burst of changes hands the touched objects
//! whose resource version moved to this node's incremental compiler
//! (`kinet_policy::Compiler`), which recompiles only what they touch, and sends the kernel
//! one transaction over nfnetlink with what changed (set and map elements when a pod came,
//! went or was relabelled; sets, chains and counters added or removed in place when policies
//! were). Every 30 s a resync reads the table back from the kernel and sends only what
//! differs from the desired one (`NftSocket::resync_policy`): nothing when no one touched
//! it, a few elements or a chain's rules after a hand edit, the whole table only when it
//! is gone or holds what kinet never writes. A failure is followed by a whole load. A
//! refused policy is a Warning Event on it, a refused transaction one on the Node.
//!
//! The table filters the forward and input hooks at priority `filter`, after the proxy's
//! DNAT (`dstnat`), so policies see the pod addresses behind a Service. Packets the node
//! sends itself (kubelet probes) take the output hook and are never filtered, as upstream
//! plugins allow them.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_controllers::events::{object_ref, EventType, Recorder};
use kinet_policy::{Cluster, Compiler, Ruleset, Update};
use kinet_proxy::micros;
use kinet_proxy::netlink::{NetlinkError, NftSocket};
use kinet_proxy::reflect::{
    spawn_touching_reflector, Changes, Key, Tasks, Touch, Touched, Watchable,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

/// The enforcer's counters, served beside the proxy's. Durations in microseconds.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    syncs: AtomicU64,
    failures: AtomicU64,
    whole_loads: AtomicU64,
    repairs: AtomicU64,
    last_sync_micros: AtomicU64,
    last_programming_micros: AtomicU64,
}

impl PolicyMetrics {
    /// A committed transaction: a whole table or changes, found by a resync or not.
    fn record(&self, whole: bool, resync: bool, sync: Duration, programming: Option<Duration>) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if whole {
            self.whole_loads.fetch_add(1, Ordering::Relaxed);
        }
        if resync {
            self.repairs.fetch_add(1, Ordering::Relaxed);
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
                "kinet_policy_resync_repairs_total",
                "counter",
                "Resyncs that found the kernel's policy table changed by someone else, and repaired it.",
                get(&self.repairs).to_string(),
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

/// A change of one object for the compiler.
enum Changed<K> {
    Set(Arc<K>),
    Gone(Key),
}

/// The resource versions of the objects of one kind the compiler was last given: each sync
/// hands it only the objects the watch touched whose version moved, and those gone.
#[derive(Default)]
struct Seen(HashMap<Key, String>);

impl Seen {
    /// What changed among the `touched` objects of `store`, in key order.
    fn changes<K>(&mut self, store: &Store<K>, touched: Touch) -> Vec<Changed<K>>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        let (present, gone): (Vec<Arc<K>>, Vec<Key>) = match touched {
            Touch::All => {
                let present = store.state();
                let mut gone: HashSet<Key> = self.0.keys().cloned().collect();
                for o in &present {
                    gone.remove(&key(&**o));
                }
                (present, gone.into_iter().collect())
            }
            Touch::Keys(keys) => {
                let mut present = Vec::new();
                let mut gone = Vec::new();
                for k in keys {
                    let mut r = ObjectRef::new(&k.1);
                    if !k.0.is_empty() {
                        r = r.within(&k.0);
                    }
                    match store.get(&r) {
                        Some(o) => present.push(o),
                        None => gone.push(k),
                    }
                }
                (present, gone)
            }
        };
        let mut out: Vec<(Key, Changed<K>)> = Vec::new();
        for k in gone {
            if self.0.remove(&k).is_some() {
                out.push((k.clone(), Changed::Gone(k)));
            }
        }
        for o in present {
            let k = key(&*o);
            let version = o.meta().resource_version.clone().unwrap_or_default();
            if self.0.get(&k) != Some(&version) {
                self.0.insert(k.clone(), version);
                out.push((k, Changed::Set(o)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, c)| c).collect()
    }
}

/// The watched objects, and what their events touched since the last sync.
struct Watched<K: Watchable> {
    store: Store<K>,
    touched: Arc<Touched>,
    seen: Seen,
}

impl<K: Watchable> Watched<K> {
    fn spawn(client: &Client, changes: &Arc<Changes>, tasks: &mut Tasks) -> Watched<K> {
        let touched = Arc::new(Touched::default());
        let store = spawn_touching_reflector(
            Api::all(client.clone()),
            watcher::Config::default(),
            changes,
            tasks,
            touched.clone(),
        );
        Watched {
            store,
            touched,
            seen: Seen::default(),
        }
    }

    fn changes(&mut self) -> Vec<Changed<K>> {
        self.seen.changes(&self.store, self.touched.take())
    }
}

/// Hands the compiler what changed in the watched objects since the last call; the
/// policies refused (they cannot be parsed), with why.
fn feed(
    compiler: &mut Compiler,
    namespaces: Vec<Changed<Namespace>>,
    pods: Vec<Changed<Pod>>,
    policies: Vec<Changed<NetworkPolicy>>,
) -> Vec<(ObjectReference, String)> {
    for c in namespaces {
        match c {
            Changed::Set(n) => compiler.set_namespace(kinet_policy::Namespace::from_k8s(&n)),
            Changed::Gone((_, name)) => compiler.remove_namespace(&name),
        }
    }
    for c in pods {
        match c {
            Changed::Set(p) => match model_pod(&p) {
                Some(p) => compiler.set_pod(p),
                None => {
                    let (ns, name) = key(&*p);
                    compiler.remove_pod(&ns, &name)
                }
            },
            Changed::Gone((ns, name)) => compiler.remove_pod(&ns, &name),
        }
    }
    let mut refused = Vec::new();
    for c in policies {
        match c {
            Changed::Set(np) => {
                if let Err(e) = compiler.set_policy(&np) {
                    refused.push((object_ref(&*np), e.to_string()));
                }
            }
            Changed::Gone((ns, name)) => compiler.remove_policy(&ns, &name),
        }
    }
    refused
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
    let mut policies = Watched::<NetworkPolicy>::spawn(&client, &changes, &mut tasks);
    let mut pods = Watched::<Pod>::spawn(&client, &changes, &mut tasks);
    let mut namespaces = Watched::<Namespace>::spawn(&client, &changes, &mut tasks);
    let recorder = Recorder::new(client, "kinet-policy");
    policies.store.wait_until_ready().await?;
    pods.store.wait_until_ready().await?;
    namespaces.store.wait_until_ready().await?;
    tracing::info!(node = %cfg.node, "network policy enforcer synced caches");

    let mut socket: Option<NftSocket> = None;
    let mut compiler = Compiler::new(Cluster::new(), &cfg.node, &cfg.node_ips);
    // Whether the kernel holds the compiler's table (else: load it whole).
    let mut loaded = false;
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
        let resync = Instant::now() >= next_resync;
        if resync {
            next_resync = Instant::now() + cfg.resync_period;
        }
        let since = changes.take();
        let start = Instant::now();
        let refused = feed(
            &mut compiler,
            namespaces.changes(),
            pods.changes(),
            policies.changes(),
        );
        for (obj, e) in refused {
            let message = format!("not enforced on node {}: {e}", cfg.node);
            warn(&recorder, obj, "InvalidNetworkPolicy", message);
        }
        let step = if !loaded {
            Step::Apply(Update::Load(compiler.ruleset()))
        } else if resync {
            Step::Verify(compiler.ruleset())
        } else {
            match compiler.sync() {
                Some(update) => Step::Apply(update),
                None => continue,
            }
        };
        let netns = cfg.netns.clone();
        let result;
        (socket, result) = tokio::task::spawn_blocking(move || {
            let r = open(&mut socket, &netns).and_then(|s| step.run(s));
            (socket, r)
        })
        .await?;
        match result {
            Ok(sent) => {
                loaded = true;
                let Some(update) = sent else {
                    tracing::debug!(node = %cfg.node, took = ?start.elapsed(), "network policy table verified");
                    continue;
                };
                let whole = matches!(update, Update::Load(_));
                let programming = since.map(|t| t.elapsed());
                cfg.metrics
                    .record(whole, resync, start.elapsed(), programming);
                tracing::debug!(node = %cfg.node, whole, resync, took = ?start.elapsed(), ?programming, "network policy rules loaded");
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
                changes.restore(since);
            }
        }
    }
}

/// What one sync does in the kernel.
enum Step {
    /// Send this update.
    Apply(Update),
    /// Read the table back and send only what differs from this one (the periodic resync:
    /// someone may have changed the table, and nothing is sent when no one did).
    Verify(Ruleset),
}

impl Step {
    /// The update sent, if any.
    fn run(self, s: &mut NftSocket) -> Result<Option<Update>, NetlinkError> {
        match self {
            Step::Apply(update) => {
                s.apply_policy(&update)?;
                Ok(Some(update))
            }
            Step::Verify(desired) => s.resync_policy(&desired),
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

/// Removes the node's policy table (the agent stopping); absent is fine.
pub fn remove_table(netns: &std::path::Path) -> Result<(), NetlinkError> {
    NftSocket::open_in(netns)?.apply_policy(&Update::Delete(kinet_policy::TABLE.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_proxy::MetricsSource;
    use kube::runtime::reflector;
    use serde_json::json;

    #[test]
    fn syncs_whole_loads_and_latency_are_exposed() {
        let m = PolicyMetrics::default();
        m.record(
            true,
            false,
            Duration::from_millis(3),
            Some(Duration::from_millis(12)),
        );
        m.record(false, true, Duration::from_micros(500), None);
        let text = m.prometheus_text();
        for want in [
            "kinet_policy_sync_total 2\n",
            "kinet_policy_whole_loads_total 1\n",
            "kinet_policy_resync_repairs_total 1\n",
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

    /// A store with `objects`, as a reflector holds them.
    fn store<K>(objects: &[Arc<K>]) -> (Store<K>, reflector::store::Writer<K>)
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        let (reader, mut writer) = reflector::store();
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::Apply((**o).clone()));
        }
        (reader, writer)
    }

    fn keys(keys: &[(&str, &str)]) -> Touch {
        Touch::Keys(
            keys.iter()
                .map(|(ns, n)| (ns.to_string(), n.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_feed_hands_over_touched_changes_and_removals_and_names_refused_policies() {
        let mut comp = Compiler::new(Cluster::new(), "n1", &[]);
        let (mut seen_pods, mut seen_policies) = (Seen::default(), Seen::default());
        let deny: Arc<NetworkPolicy> = object(json!({
            "metadata": {"namespace": "x", "name": "web", "resourceVersion": "1"},
            "spec": {"podSelector": {"matchLabels": {"tier": "web"}}}
        }));
        let bad: Arc<NetworkPolicy> = object(json!({
            "metadata": {"namespace": "x", "name": "bad", "resourceVersion": "1"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}
        }));
        let (pods, mut pod_writer) = store(&[pod_at("a", "1", "web"), pod_at("bb", "1", "db")]);
        let (policies, _w) = store(&[deny, bad]);
        let refused = feed(
            &mut comp,
            Vec::new(),
            seen_pods.changes(&pods, Touch::All),
            seen_policies.changes(&policies, Touch::All),
        );
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0.name.as_deref(), Some("bad"));
        assert_eq!(refused[0].0.kind.as_deref(), Some("NetworkPolicy"));
        let Some(Update::Changes { .. }) = comp.sync() else {
            panic!("the first sync compiles x/a's chain in place");
        };
        // A relist with unchanged versions, and a touched key whose version did not move,
        // hand nothing over.
        assert!(seen_pods.changes(&pods, Touch::All).is_empty());
        assert!(seen_policies
            .changes(&policies, keys(&[("x", "web")]))
            .is_empty());
        // A relabel and a removal do, for the touched keys only.
        pod_writer.apply_watcher_event(&watcher::Event::Apply((*pod_at("a", "2", "db")).clone()));
        pod_writer.apply_watcher_event(&watcher::Event::Delete((*pod_at("bb", "1", "db")).clone()));
        assert_eq!(seen_pods.changes(&pods, keys(&[("x", "a")])).len(), 1);
        let gone = seen_pods.changes(&pods, keys(&[("x", "bb"), ("x", "zz")]));
        assert!(matches!(&gone[..], [Changed::Gone(k)] if k.1 == "bb"));
        feed(
            &mut comp,
            Vec::new(),
            vec![
                Changed::Set(pod_at("a", "2", "db")),
                Changed::Gone(("x".into(), "bb".into())),
            ],
            Vec::new(),
        );
        assert!(comp.sync().is_some());
        assert!(comp.ruleset().chains.iter().all(|c| c.hook.is_some()));
        assert_eq!(comp.cluster().pods().len(), 1);
    }

    #[test]
    fn a_relist_finds_the_objects_deleted_while_the_watch_was_down() {
        let mut seen = Seen::default();
        let (pods, mut w) = store(&[pod_at("a", "1", "web"), pod_at("bb", "1", "db")]);
        assert_eq!(seen.changes(&pods, Touch::All).len(), 2);
        // The watch restarts; the relist no longer has bb and no event named it.
        w.apply_watcher_event(&watcher::Event::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(
            (*pod_at("a", "1", "web")).clone(),
        ));
        w.apply_watcher_event(&watcher::Event::InitDone);
        let changes = seen.changes(&pods, Touch::All);
        assert!(matches!(&changes[..], [Changed::Gone(k)] if k.1 == "bb"));
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
        let names: Vec<_> = c.pods().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].starts_with("x/bad: "), "{refused:?}");
    }
}
