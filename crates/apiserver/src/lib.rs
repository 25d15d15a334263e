//! The Kubernetes-compatible API server: HTTPS, authentication, discovery, REST and watch.
//!
//! - [`server`]: TLS connections, authentication, non-resource paths.
//! - [`path`]: URL paths to resources; [`discovery`] and [`openapi`]: the documents kubectl reads.
//! - [`rest`]: the verbs over the store, with kube-apiserver's semantics.

mod auth;
mod authz;
mod bootstrap;
pub mod crds;
pub mod discovery;
mod error;
mod http;
mod impersonate;
pub mod join;
pub mod nodeproxy;
pub mod openapi;
pub mod path;
mod peers;
mod plugins;
mod quota;
pub mod repair;
pub mod rest;
mod reviews;
mod server;
mod tls;
pub mod tokenrequest;
mod tokenrequest_pb;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use kinet_health::{Checks, Endpoint};
use kinet_store::Store;

pub use error::ServeError;
pub use nodeproxy::KubeletClient;
use rest::{Allocators, Api, NetworkConfig};

/// Everything the control plane needs to serve one cluster.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The cluster's name, as in `kinet up --name`.
    pub cluster: String,
    /// Where durable state lives (the store is `data_dir/store.db` unless `etcd` is set).
    pub data_dir: PathBuf,
    /// The etcd cluster holding the objects instead of SQLite (`kinet up --datastore`).
    pub etcd: Option<kinet_store::EtcdConfig>,
    /// Addresses to serve HTTPS on.
    pub listen: Vec<SocketAddr>,
    /// PEM of the cluster CA; client certificates are verified against it.
    pub ca_cert_pem: String,
    /// PEM of the serving certificate (with SANs for every listen address) and its key.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// kube-apiserver's `--service-account-key-file`: the key service-account tokens are signed
    /// and verified with, generated there when absent. Every server of a cluster names the
    /// same file, so each accepts the tokens the others issue.
    pub service_account_key_file: PathBuf,
    /// Bearer tokens accepted, with the user they authenticate.
    pub tokens: Vec<TokenUser>,
    /// The admission plugins' cluster-wide settings.
    pub admission: kinet_admission::Settings,
    /// Prometheus text of the control plane's other parts, served at `/metrics`.
    pub metrics: Option<MetricsText>,
    /// Authorize requests (Node and RBAC); off only for the benchmark's baseline.
    pub authorization: bool,
    /// Checks behind `/livez`, `/readyz` and `/healthz`. The server adds its own (`ping`,
    /// `etcd`, `watch-cache`); the process's other parts (the control loops) add theirs.
    pub health: Checks,
}

impl ServeConfig {
    /// The address this server advertises, in discovery and in the `kubernetes` endpoints
    /// (kube-apiserver's `--advertise-address`): the first listen address, since `kinet serve`
    /// lists the one the nodes reach first.
    pub fn advertise_address(&self) -> Option<SocketAddr> {
        self.listen.first().copied()
    }
}

/// Renders Prometheus text on demand (the supervised control loops' counters, which run in
/// the same process as kube-controller-manager's would beside kube-apiserver).
#[derive(Clone)]
pub struct MetricsText(pub Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsText")
    }
}

/// A bearer token and who it authenticates as.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub token: String,
    pub user: String,
    pub groups: Vec<String>,
}

/// Opens the store and builds the API state, with allocations rebuilt from stored Services.
pub fn open_api(config: &ServeConfig) -> Result<Arc<Api>, ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(ServeError::io("creating", &config.data_dir))?;
    let store = match &config.etcd {
        Some(etcd) => Store::etcd(etcd, kinet_store::Options::default())?,
        None => Store::open(&config.data_dir.join("store.db"))?,
    };
    let network = NetworkConfig::default();
    let mut alloc = Allocators::new(network.clone());
    let services =
        kinet_types::registry::lookup("", "v1", "services").expect("services are served");
    let (all, _) = store.list(&rest::collection_prefix(services, None));
    for svc in all {
        let key = rest::object_key(
            services,
            svc.value["metadata"]["namespace"].as_str(),
            svc.value["metadata"]["name"].as_str().unwrap_or_default(),
        );
        rest::Holdings::of(&svc.value).claim(&mut alloc, &key);
    }
    register_checks(&config.health, &store);
    let server_address = config
        .advertise_address()
        .map(|a| a.to_string())
        .unwrap_or_default();
    Ok(Arc::new(Api {
        store,
        tokens: config.tokens.clone(),
        admission: config.admission,
        metrics: config.metrics.clone(),
        server_address,
        network,
        alloc: Mutex::new(alloc),
        kubelet: std::sync::OnceLock::new(),
        crds: crds::Registry::default(),
        quota_locks: Default::default(),
        health: config.health.clone(),
        authz: authz::Authorizer::new(config.authorization),
        ca_pem: config.ca_cert_pem.clone(),
        sa_tokens: tokenrequest::TokenIssuer::load_or_generate(&config.service_account_key_file)?,
    }))
}

/// Records the start-up check's findings: an Event on each object, and a log line.
async fn report_findings(api: &Api, findings: &[repair::Finding]) {
    tracing::info!("{}", repair::summary(findings));
    let events = kinet_types::registry::lookup("", "v1", "events").expect("events are served");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for f in findings {
        let meta = &f.object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("default").to_string();
        let name = meta["name"].as_str().unwrap_or(f.resource.plural);
        let mut event = serde_json::json!({
            "metadata": {"name": format!("{name}.{:016x}", rand::random::<u64>()), "namespace": namespace},
            "involvedObject": {"kind": f.resource.kind, "apiVersion": f.resource.api_version(),
                "name": name, "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": f.reason, "message": f.message, "type": "Warning", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "kube-apiserver"}, "reportingComponent": "kube-apiserver",
        });
        let stored = match api.prepare_new(events, &mut event, Some(&namespace)) {
            Ok(()) => api.insert(events, event, false).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e.message, "could not record the start-up check's event");
        }
    }
}

/// kube-apiserver's storage check waits this long for etcd (`--etcd-healthcheck-timeout`).
const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The server's own checks, under kube-apiserver's names: `etcd` is its storage check.
fn register_checks(checks: &Checks, store: &Store) {
    checks.add("ping", Endpoint::Live, || Box::pin(async { Ok(()) }));
    let s = store.clone();
    checks.add("etcd", Endpoint::Live, move || {
        let s = s.clone();
        Box::pin(async move {
            tokio::time::timeout(STORE_PROBE_TIMEOUT, s.probe())
                .await
                .map_err(|_| format!("the store did not answer within {STORE_PROBE_TIMEOUT:?}"))?
        })
    });
    let s = store.clone();
    checks.add("watch-cache", Endpoint::Ready, move || {
        let r = s.watch_cache_synced();
        Box::pin(async move { r })
    });
}

/// Serves until SIGTERM or SIGINT.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    run_with_kubelet_client(config, None).await
}

/// Like [`run`], reaching node agents with `kubelet` for logs, exec, attach and port-forward.
pub async fn run_with_kubelet_client(
    config: ServeConfig,
    kubelet: Option<KubeletClient>,
) -> Result<(), ServeError> {
    let api = open_api(&config)?;
    if let Some(k) = kubelet {
        let tls = kinet_node_api::client_config(&k.cert_pem, &k.key_pem)?;
        let _ = api.kubelet.set(tls);
    }
    let advertised = config
        .advertise_address()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6443)));
    let port = advertised.port();
    let findings = repair::run(&api.store, &config.data_dir).await?;
    api.reconcile_claims().await;
    let crd_controller = tokio::spawn(crds::run(api.clone()));
    let quota_controller = tokio::spawn(quota::run_quota_status(api.clone()));
    bootstrap::run(&api, port)
        .await
        .map_err(ServeError::api("bootstrapping"))?;
    let peers = peers::Reconciler::new(advertised, peers::Timing::default());
    peers.join(&api).await;
    report_findings(&api, &findings).await;
    let tls = tls::server_config(
        &config.ca_cert_pem,
        &config.server_cert_pem,
        &config.server_key_pem,
    )?;
    let mut servers = Vec::new();
    for addr in &config.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: *addr,
                source,
            })?;
        tracing::info!(%addr, cluster = %config.cluster, "serving the Kubernetes API");
        servers.push(tokio::spawn(server::serve(
            listener,
            tls.clone(),
            api.clone(),
        )));
    }
    let peer_task = tokio::spawn(peers.clone().run(api.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    for s in servers {
        s.abort();
    }
    crd_controller.abort();
    quota_controller.abort();
    peer_task.abort();
    if let Err(e) = peers.leave(&api).await {
        tracing::warn!(error = %e.message, "leaving the kubernetes endpoints");
    }
    Ok(())
}
