//! The node's NetworkPolicy enforcer: reflectors on NetworkPolicies, Pods and Namespaces;
//! every burst of changes compiles this node's `table ip kinet-policy` (`kinet_policy`) and
//! sends the kernel one transaction over nfnetlink with what changed (`kinet_policy::plan`:
//! set and map elements when a pod came, went or was relabelled; sets, chains and counters
//! added or removed in place when policies were). Every 30 s a resync reloads the whole
//! table if anyone else committed in the namespace since (the ruleset generation says so);
//! a failure is followed by a whole load.
//!
//! The table filters the forward and input hooks at priority `filter`, after the proxy's
//! DNAT (`dstnat`), so policies see the pod addresses behind a Service. Packets the node
//! sends itself (kubelet probes) take the output hook and are never filtered, as upstream
//! plugins allow them.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_policy::{compile, plan, Cluster, Ruleset, Update};
use kinet_proxy::netlink::{NetlinkError, NftSocket};
use kinet_proxy::reflect::{spawn_reflector, Changes, Tasks};
use kube::runtime::watcher;
use kube::{Api, Client};

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
    // A finished pod's address may already belong to another pod.
    let running = |p: &&Pod| {
        !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    for p in pods.filter(running).filter_map(kinet_policy::Pod::from_k8s) {
        c.set_pod(p);
    }
    let mut refused = Vec::new();
    for np in policies {
        if let Err(e) = c.set_policy(np) {
            let ns = np.metadata.namespace.as_deref().unwrap_or_default();
            let name = np.metadata.name.as_deref().unwrap_or_default();
            refused.push(format!("{ns}/{name}: {e}"));
        }
    }
    (c, refused)
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
    let namespaces = spawn_reflector(Api::<Namespace>::all(client), all, &changes, &mut tasks);
    policies.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    namespaces.wait_until_ready().await?;
    tracing::info!(node = %cfg.node, "network policy enforcer synced caches");

    let mut socket: Option<NftSocket> = None;
    // What the kernel holds, as far as we know (`None`: reload the whole table).
    let mut loaded: Option<Ruleset> = None;
    // The namespace's ruleset generation right after our last commit.
    let mut committed: Option<u32> = None;
    let mut refused_before: Vec<String> = Vec::new();
    let mut next_resync = Instant::now() + cfg.resync_period;
    let mut first = true;
    loop {
        if !first {
            let deadline = if loaded.is_none() {
                (Instant::now() + cfg.retry_period).min(next_resync)
            } else {
                next_resync
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
                loaded = None;
            }
        }
        let since = changes.take();
        let start = Instant::now();
        let (ns_store, pod_store, np_store) = (namespaces.state(), pods.state(), policies.state());
        let (cluster, refused) = cluster_view(
            ns_store.iter().map(|n| &**n),
            pod_store.iter().map(|p| &**p),
            np_store.iter().map(|p| &**p),
        );
        for r in refused.iter().filter(|r| !refused_before.contains(r)) {
            tracing::warn!(node = %cfg.node, "network policy not enforced: {r}");
        }
        refused_before = refused;
        let desired = compile(&cluster, &cfg.node, &cfg.node_ips);
        let Some(update) = plan(loaded.as_ref(), &desired) else {
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
                loaded = Some(desired);
            }
            Err(e) => {
                cfg.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(node = %cfg.node, error = %e, "network policy rules not loaded; retrying with a whole load");
                socket = None;
                loaded = None;
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
