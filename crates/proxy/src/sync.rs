//! The sync loop: reflectors keep Services, EndpointSlices and this Node in
//! memory; any change wakes one sync of the Renderer (only the Services the watch
//! events touched are looked at, and re-rendered if their objects changed) + one
//! kernel transaction of the difference, after a
//! short debounce that folds a burst of events into one sync (kube-proxy's
//! minSyncPeriod). A periodic resync reads the table back and repairs what
//! differs (tampered state) without touching affinity sets, and a failed sync
//! is retried the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy_rules::{NodeInfo, ProxyConfig, Renderer, Ruleset, Synced};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::announce;
use crate::applier::{Applier, ApplyOutcome};
use crate::dirty::{touched_services, SliceIndex};
use crate::health::{health_checks, HealthServer};
use crate::healthz::{node_eligible, ProxyHealthz};
use crate::iptables::{hand_over, IptablesApplier, ProxyMode};
use crate::lbaddr::LbAddresses;
use crate::metrics::Metrics;
use crate::node::node_info;
use crate::reflect::{spawn_reflector, spawn_touching_reflector, Changes, Tasks, Touch, Touched};

/// Knobs of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// A change waits this long before syncing, collecting the changes after it.
    pub min_sync_period: Duration,
    /// The table is read back and repaired at least this often, changes or not.
    pub resync_period: Duration,
    /// Delay before retrying a failed load.
    pub retry_period: Duration,
    pub metrics: Arc<Metrics>,
    /// Receives every ruleset once it is in the kernel (e.g. for `rules_for`).
    pub applied: Option<watch::Sender<Option<Arc<Ruleset>>>>,
    /// Receives how each sync went (the node agent's readiness reads it).
    pub health: Option<watch::Sender<SyncHealth>>,
    /// Records changes and successful syncs for `/healthz`; its timeout is set to twice
    /// `resync_period`, as kube-proxy's is to twice its sync period.
    pub healthz: Arc<ProxyHealthz>,
    /// nftables (`config.table`) or kube-proxy's iptables chains; the other mode's rules
    /// are removed once this mode's are loaded.
    pub mode: ProxyMode,
    /// `Some(name)`: serve only the Services labelled `service.kubernetes.io/service-proxy-name:
    /// name` (kinet beside kube-proxy); `None`: every Service without that label, as
    /// kube-proxy does.
    pub service_proxy_name: Option<String>,
}

impl SyncOptions {
    /// The label selector of the Services this proxy serves.
    pub fn service_selector(&self) -> String {
        let label = kinet_types::wellknown::SERVICE_PROXY_NAME_LABEL;
        match &self.service_proxy_name {
            Some(name) => format!("{label}={name}"),
            None => format!("!{label}"),
        }
    }
}

/// What one sync rendered, for the mode's applier.
enum Rendered {
    Nftables(Synced),
    Iptables(kinet_proxy_iptables::Tables),
}

/// How the last sync went: `None` before the first, then `Ok` or why the rules are not in
/// the kernel.
pub type SyncHealth = Option<Result<(), String>>;

fn report(health: &Option<watch::Sender<SyncHealth>>, now: Result<(), String>) {
    if let Some(tx) = health {
        tx.send_if_modified(|h| {
            let changed = h.as_ref() != Some(&now);
            *h = Some(now);
            changed
        });
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            min_sync_period: Duration::from_millis(10),
            resync_period: Duration::from_secs(30),
            retry_period: Duration::from_secs(1),
            metrics: Arc::new(Metrics::default()),
            applied: None,
            health: None,
            healthz: Arc::default(),
            mode: ProxyMode::default(),
            service_proxy_name: None,
        }
    }
}

/// Observes, for each EndpointSlice change a sync has just put in effect, the time since the
/// change that triggered it (a trigger stamped later by a skewed clock counts as zero).
fn record_triggers(metrics: &Metrics, triggers: &[k8s_openapi::jiff::Timestamp]) {
    let now = k8s_openapi::jiff::Timestamp::now();
    for t in triggers {
        let waited = now.duration_since(*t);
        let waited = if waited.is_negative() {
            Duration::ZERO
        } else {
            waited.unsigned_abs()
        };
        metrics.record_network_programming(waited);
    }
}

/// Runs the proxy for `node` until the task is dropped, with default options.
pub async fn run(
    client: Client,
    node: NodeInfo,
    config: ProxyConfig,
    applier: Applier,
) -> anyhow::Result<()> {
    run_with(client, node, config, applier, SyncOptions::default()).await
}

/// `run` with explicit options.
pub async fn run_with(
    client: Client,
    node: NodeInfo,
    config: ProxyConfig,
    mut applier: Applier,
    opts: SyncOptions,
) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("proxy config: {e}"))?;
    anyhow::ensure!(
        config.table == applier.table(),
        "config table {:?} but applier table {:?}",
        config.table,
        applier.table()
    );
    opts.healthz.set_timeout(opts.resync_period * 2);
    let changes = Arc::new(Changes::with_healthz(opts.healthz.clone()));
    let mut tasks = Tasks::default();
    // What the Service and EndpointSlice events touched: a sync looks at those only.
    let (svc_touched, slice_touched) = (Arc::new(Touched::default()), Arc::new(Touched::default()));
    let services = spawn_touching_reflector(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().labels(&opts.service_selector()),
        &changes,
        &mut tasks,
        svc_touched.clone(),
    );
    let slices = spawn_touching_reflector(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        &changes,
        &mut tasks,
        slice_touched.clone(),
    );
    // All nodes: which node announces a LoadBalancer address depends on who is Ready.
    let nodes = spawn_reflector(
        Api::<Node>::all(client),
        watcher::Config::default(),
        &changes,
        &mut tasks,
    );
    let mut lb_addrs = LbAddresses::new(applier.netns());
    let mut health = HealthServer::new(applier.netns());
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    tracing::info!(node = %node.name, netns = %applier.netns().display(), "proxy synced caches");

    let mut renderer = Renderer::new(&node, &config);
    // Each Service's slices, once a whole sync has built it.
    let mut index: Option<SliceIndex> = None;
    let mut iptables =
        (opts.mode == ProxyMode::Iptables).then(|| IptablesApplier::new(applier.netns()));
    let mut handed_over = false;
    let mut next_resync = Instant::now() + opts.resync_period;
    let mut retry_at: Option<Instant> = None;
    let mut first = true;
    loop {
        if !first {
            if let Some(r) = retry_at {
                tokio::time::sleep_until(r.min(next_resync).into()).await;
            } else if changes.pending() {
                // Events came in during the last sync: still let the burst finish.
                tokio::time::sleep(opts.min_sync_period).await;
            } else {
                tokio::select! {
                    _ = changes.wake.notified() => {
                        tokio::time::sleep(opts.min_sync_period).await;
                    }
                    _ = tokio::time::sleep_until(next_resync.into()) => {}
                }
            }
        }
        first = false;
        if Instant::now() >= next_resync {
            applier.force_resync();
            iptables.as_mut().map(IptablesApplier::force_resync);
            lb_addrs.force();
            next_resync = Instant::now() + opts.resync_period;
        }
        // Everything that arrived up to here is covered by this render.
        let since = changes.take();
        let triggers = changes.take_triggers();
        let touched = (svc_touched.take(), slice_touched.take());

        let start = Instant::now();
        let all_nodes: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
        let me = all_nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node.name.as_str()));
        let node_now = node_info(me, &node);
        opts.healthz.set_node_eligible(node_eligible(me));
        // Borrowed from the reflector stores: nothing is cloned per sync.
        let (svc_store, slice_store) = (services.state(), slices.state());
        let svcs = || svc_store.iter().map(|s| &**s);
        let eps = || slice_store.iter().map(|s| &**s);
        let rendered = match &iptables {
            Some(_) => Rendered::Iptables(kinet_proxy_iptables::render(
                svcs(),
                eps(),
                &node_now,
                &config,
            )),
            None => {
                if !renderer.renders_for(&node_now, &config) {
                    renderer = Renderer::new(&node_now, &config);
                    applier.force_resync();
                    index = None;
                }
                Rendered::Nftables(match (index.as_mut(), touched) {
                    (Some(index), (Touch::Keys(s), Touch::Keys(e))) => {
                        let now = touched_services(index, s, e, &services, &slices);
                        renderer.sync_services(now.iter().map(|(key, now)| {
                            let objects = now
                                .as_ref()
                                .map(|(svc, own)| (&**svc, own.iter().map(|e| &**e).collect()));
                            (key.clone(), objects)
                        }))
                    }
                    // The first sync, a relist, or a new renderer: everything compared.
                    _ => {
                        index = Some(SliceIndex::of(eps()));
                        renderer.sync(svcs(), eps())
                    }
                })
            }
        };
        let render_took = start.elapsed();
        if let Rendered::Nftables(synced) = &rendered {
            for port in &synced.refused {
                tracing::error!(%port, "all 65,535 endpoint group ids are in use: the port gets no DNAT rule");
            }
        }

        // Outside the ruleset: the health-check ports and the announced LB addresses.
        health.sync(health_checks(svcs(), eps(), &node.name));
        let ready = announce::ready_nodes(&all_nodes);
        let held = announce::mine(
            &announce::announcers(svcs(), eps(), &ready, &node.name),
            &node.name,
        );
        let mut addrs = std::mem::replace(&mut lb_addrs, LbAddresses::new(applier.netns()));
        let addr_result;
        (addrs, addr_result) = tokio::task::spawn_blocking(move || {
            let r = addrs.sync(&held);
            (addrs, r)
        })
        .await?;
        lb_addrs = addrs;
        if let Err(e) = &addr_result {
            tracing::warn!(error = %e, "load balancer addresses not synced; retrying");
        }

        let result;
        (applier, renderer, iptables, result) = tokio::task::spawn_blocking(move || {
            let r = match rendered {
                Rendered::Nftables(synced) => applier.apply_synced(&renderer, synced),
                Rendered::Iptables(tables) => iptables
                    .as_mut()
                    .expect("rendered for iptables only in iptables mode")
                    .apply(tables),
            };
            (applier, renderer, iptables, r)
        })
        .await?;
        if result.is_ok() && !handed_over {
            // This mode's rules are in: the other mode's can go without a gap in service.
            let (mode, netns, table) =
                (opts.mode, applier.netns().to_owned(), config.table.clone());
            match tokio::task::spawn_blocking(move || hand_over(mode, &netns, &table)).await? {
                Ok(()) => handed_over = true,
                Err(e) => tracing::warn!(error = %e, "removing the other proxy mode's rules"),
            }
        }
        match result {
            Ok(ApplyOutcome::Applied {
                duration,
                flushed_udp,
                ..
            }) => {
                retry_at = None;
                opts.metrics
                    .record_sync(render_took, duration, flushed_udp.len());
                if let Some(t) = since {
                    opts.metrics.record_programming_latency(t.elapsed());
                }
                record_triggers(&opts.metrics, &triggers);
                tracing::debug!(?duration, "proxy rules loaded");
                if let Some(tx) = opts.applied.as_ref().filter(|_| iptables.is_none()) {
                    tx.send_replace(Some(Arc::new(renderer.ruleset())));
                }
                report(&opts.health, Ok(()));
                opts.healthz.updated();
            }
            Ok(ApplyOutcome::Unchanged) => {
                retry_at = None;
                opts.metrics.record_unchanged();
                // Already in the kernel: programmed as of now.
                record_triggers(&opts.metrics, &triggers);
                report(&opts.health, Ok(()));
                opts.healthz.updated();
            }
            Err(e) => {
                opts.metrics.record_failure();
                report(&opts.health, Err(format!("{e:#}")));
                tracing::error!(error = %e, "proxy sync failed; retrying with a repair");
                retry_at = Some(Instant::now() + opts.retry_period);
                changes.restore(since);
                changes.restore_triggers(triggers);
            }
        }
        if addr_result.is_err() {
            lb_addrs.force();
            retry_at = Some(Instant::now() + opts.retry_period);
        }
    }
}
