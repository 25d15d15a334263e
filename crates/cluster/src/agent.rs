//! `kinet agent --name C --node N`: the node agent, started by `up` inside the node's
//! network namespace, so it reaches the API server over the underlay as a kubelet would; and
//! `kinet join-agent --state-dir DIR`, the same agent on a joined host, in that host's own
//! network namespace. It runs, side by side: registration and heartbeats, the pod network, the pods, the
//! service proxy, and the node API that `kubectl logs/exec/port-forward` reach.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Node;
use kinet_agent::network::{self, NetworkConfig};
use kinet_agent::pods::{self, ClusterDns, Runtime};
use kinet_agent::{host, AgentConfig, NodeConfig};
use kinet_cni::Backend;
use kinet_types::wellknown::{PROXY_HEALTHZ_PORT, PROXY_METRICS_PORT};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::join::Joined;
use crate::nodes::Plan;
use crate::published::NodeSettings;
use crate::state::{self, absolute_home, ClusterDir};

/// The service proxy's nftables table in the node's namespace.
pub const PROXY_TABLE: &str = "kinet";

/// What an agent needs to know about its node, wherever the node is.
struct NodeSetup {
    node: String,
    /// The label of the node's kernel objects: pod namespaces `kinet-<cluster>-pod-<uid>`,
    /// cgroups `kinet/<cluster>`.
    cluster: String,
    /// The node's network namespace, where the agent runs.
    netns: PathBuf,
    ip: Ipv4Addr,
    control_plane: bool,
    /// `None`: the one the cluster's other nodes publish.
    backend: Option<Backend>,
    kubeconfig: PathBuf,
    node_dir: PathBuf,
    images_dir: PathBuf,
    /// Every API server's address on the underlay (`--api-servers`), the kubeconfig's first;
    /// with more than one the agent fails over between them.
    api_servers: Vec<std::net::SocketAddr>,
    /// `None`: the ones the cluster publishes (a joined host has no `cluster.json`).
    settings: Option<NodeSettings>,
}

/// `kinet agent --name C --node N`: a namespaced node's agent.
pub async fn agent(name: &str, node: &str) -> Result<()> {
    crate::serve::init_logging();
    state::validate_name(name)?;
    let dir = ClusterDir::new(&absolute_home()?, name);
    let info = dir.load_info()?;
    let Some(underlay) = info.underlay else {
        bail!("cluster \"{name}\" has no underlay (was it created with --nodes 0?)");
    };
    let plan = Plan::new(name, underlay, info.nodes);
    let Some(me) = plan.node(node) else {
        bail!("cluster \"{name}\" has no node {node}");
    };
    run(NodeSetup {
        node: me.name.clone(),
        cluster: name.to_string(),
        netns: PathBuf::from(kinet_netns::NETNS_RUN_DIR).join(&me.netns),
        ip: me.ip,
        control_plane: me.control_plane,
        backend: Some(info.backend.cni()),
        kubeconfig: dir.node_kubeconfig(node),
        node_dir: dir.node_dir(node),
        images_dir: absolute_home()?.join("images"),
        api_servers: info
            .api_servers()
            .iter()
            .filter_map(|s| s.underlay)
            .collect(),
        settings: Some(NodeSettings::of(&info)),
    })
    .await
}

/// `kinet join-agent --state-dir DIR`: a joined host's agent, in the host's own network
/// namespace, with what `kinet join` recorded.
pub async fn joined_agent(state_dir: &Path) -> Result<()> {
    crate::serve::init_logging();
    let joined = Joined::load(state_dir)?;
    let dir = joined.dir();
    run(NodeSetup {
        cluster: joined.node.clone(),
        netns: PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
        ip: joined.node_ip,
        control_plane: false,
        backend: None,
        kubeconfig: joined.kubeconfig(),
        node_dir: dir.node_dir(&joined.node),
        images_dir: dir.root.join("images"),
        api_servers: Vec::new(),
        settings: None,
        node: joined.node,
    })
    .await
}

/// The backend the other nodes publish; flannel's default (vxlan) when none does yet.
async fn cluster_backend(client: &kube::Client, node: &str) -> Result<Backend> {
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .context("listing the nodes")?;
    Ok(network::cluster_backend(&list.items, node).unwrap_or(Backend::Vxlan))
}

/// Points the client at a load balancer over `servers` on 127.0.0.1 (in the node's
/// namespace), which moves to the next server when one fails ([`kinet_agent::failover`]).
async fn failover(config: &mut kube::Config, servers: Vec<std::net::SocketAddr>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("the API servers' load balancer")?;
    let local = listener.local_addr()?;
    // TLS still checks the kubeconfig's server name: the servers share its certificate.
    config.tls_server_name = config.cluster_url.host().map(str::to_string);
    config.cluster_url = format!("https://{local}").parse()?;
    tracing::info!(%local, ?servers, "failing over between the API servers");
    let servers = Arc::new(kinet_agent::failover::Servers::new(servers));
    tokio::spawn(kinet_agent::failover::serve(listener, servers));
    Ok(())
}

async fn run(me: NodeSetup) -> Result<()> {
    let node = me.node.as_str();
    let path = &me.kubeconfig;
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let ca_pem = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.as_deref())
        .map(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64)
        })
        .transpose()?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .context("the node kubeconfig has no CA")?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("loading the node's kubeconfig")?;
    config.read_timeout = Some(Duration::from_secs(295));
    if me.api_servers.len() > 1 {
        failover(&mut config, me.api_servers.clone()).await?;
    }
    let client = kube::Client::try_from(config)?;
    let settings = match me.settings {
        Some(s) => s,
        None => crate::published::read(&client).await?,
    };
    tracing::info!(node, proxy_mode = %settings.proxy_mode, "cluster settings");
    let cfg = AgentConfig::new(NodeConfig {
        name: me.node.clone(),
        internal_ip: me.ip,
        control_plane: me.control_plane,
        capacity: host::detect_capacity(),
        system: host::detect_system(&format!("kinet://{}", env!("CARGO_PKG_VERSION"))),
    })
    .with_grace_period(Duration::from_secs(
        settings.node_monitor_grace_period_seconds,
    ))
    .with_images(me.images_dir.clone());
    crate::serve::ignore_hangup()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tracing::info!(node, ip = %me.ip, pid = std::process::id(), "agent starting");

    let backend = match me.backend {
        Some(b) => b,
        None => cluster_backend(&client, node).await?,
    };
    let net_cfg = NetworkConfig {
        node: me.node.clone(),
        netns: me.netns.clone(),
        underlay_ip: me.ip,
        backend,
        cluster_cidr: kinet_controllers::ControllerConfig::default()
            .cluster_cidr
            .parse()
            .context("the cluster CIDR")?,
    };
    // What the Node's Ready condition says: the pod network and the proxy report into it
    // (a proxy of another's, as kube-proxy is to a kubelet, does not).
    let mut starting = kinet_agent::Readiness::starting();
    if !settings.service_proxy {
        starting.proxy = kinet_agent::readiness::Check::Ok;
    }
    let (readiness, ready_rx) = tokio::sync::watch::channel(starting);
    let (with_proxy, with_policy) = (settings.service_proxy, settings.network_policy);
    let workloads = {
        let client = client.clone();
        let node_dir = me.node_dir.clone();
        let cluster = me.cluster.clone();
        let netns = me.netns.clone();
        let images_dir = me.images_dir.clone();
        let registries = settings.registries;
        let proxy_mode = settings.proxy_mode;
        let ip = me.ip;
        async move {
            let net = network::prepare_until_ready(&client, &net_cfg, &readiness).await;
            let runtime = Runtime::new(
                client.clone(),
                pods::Config {
                    node: net_cfg.node.clone(),
                    cluster,
                    host_ip: ip,
                    node_dir,
                    exe: std::env::current_exe()?,
                    images_dir,
                    dns: ClusterDns::default(),
                    ca_pem: ca_pem.clone(),
                    registries,
                },
                std::sync::Arc::new(pods::Linux {
                    node_ns: kinet_netns::NetNs::open_path(&netns)?,
                    net: net.clone(),
                    exe: std::env::current_exe()?,
                }),
                net.pod_cidr,
            );
            let node_info = kinet_proxy::NodeInfo {
                name: net_cfg.node.clone(),
                node_ips: vec![ip],
                pod_cidr: Some(net.pod_cidr),
            };
            let policy_cfg = kinet_agent::policy::PolicyConfig::new(
                net_cfg.node.clone(),
                vec![ip],
                netns.clone(),
            );
            let policy_metrics = policy_cfg.metrics.clone();
            let listener =
                tokio::net::TcpListener::bind((ip, kinet_agent::node::KUBELET_PORT as u16))
                    .await
                    .context("binding the node API port")?;
            let tls =
                kinet_node_api::server_config(&ca_pem, &[ip.to_string(), net_cfg.node.clone()])?;
            let streaming: Arc<dyn kinet_node_api::Pods> = Arc::new(Streaming(runtime.clone()));
            // Off, the add-on's DaemonSet (`kinet manifests proxy|policy`) may do the job.
            let proxy = async {
                if !with_proxy {
                    return std::future::pending().await;
                }
                let node = ServiceProxy {
                    client: client.clone(),
                    node: node_info,
                    ip,
                    netns,
                    mode: proxy_mode,
                };
                node.run(readiness.clone(), policy_metrics).await
            };
            let policy = async {
                if !with_policy {
                    return std::future::pending().await;
                }
                kinet_agent::policy::run(client.clone(), policy_cfg)
                    .await
                    .context("network policy")
            };
            tokio::select! {
                _ = network::keep_peers(client.clone(), net_cfg.clone(), net, readiness.clone()) => bail!("the node watch ended"),
                _ = pods::run(runtime) => bail!("the pod watch ended"),
                r = proxy => r,
                r = policy => r,
                r = kinet_node_api::serve(listener, tls, streaming, std::future::pending()) => r.context("node API"),
            }
        }
    };
    let netns_path = me.netns.clone();
    tokio::select! {
        r = kinet_agent::run(client, cfg, ready_rx) => r?,
        r = workloads => r?,
        _ = term.recv() => tracing::info!(node, "agent stopping (SIGTERM)"),
    }
    // Policies are enforced only while an agent keeps them current (an add-on's enforcer
    // keeps its own).
    if with_policy {
        if let Err(e) = kinet_agent::policy::remove_table(&netns_path) {
            tracing::warn!(node, error = %e, "removing the network policy table");
        }
    }
    Ok(())
}

/// The agent's service proxy, with kube-proxy's metrics and healthz ports.
struct ServiceProxy {
    client: kube::Client,
    node: kinet_proxy::NodeInfo,
    ip: Ipv4Addr,
    netns: PathBuf,
    mode: kinet_proxy::ProxyMode,
}

impl ServiceProxy {
    /// Runs until an error; its syncs report into `readiness`. The policy enforcer's
    /// counters are served beside the proxy's.
    async fn run(
        self,
        readiness: tokio::sync::watch::Sender<kinet_agent::Readiness>,
        policy_metrics: Arc<kinet_agent::policy::PolicyMetrics>,
    ) -> Result<()> {
        let applier = kinet_proxy::Applier::new(self.netns, PROXY_TABLE);
        // Sync durations and network programming latency.
        let metrics = Arc::new(kinet_proxy::Metrics::default());
        let metrics_listener = tokio::net::TcpListener::bind((self.ip, PROXY_METRICS_PORT))
            .await
            .context("binding the proxy metrics port")?;
        // 503 once a change has waited too long for its sync.
        let healthz = Arc::new(kinet_proxy::ProxyHealthz::default());
        let healthz_listener = tokio::net::TcpListener::bind((self.ip, PROXY_HEALTHZ_PORT))
            .await
            .context("binding the proxy healthz port")?;
        let (proxy_health, proxy_outcomes) = tokio::sync::watch::channel(None);
        let opts = kinet_proxy::SyncOptions {
            metrics: metrics.clone(),
            health: Some(proxy_health),
            healthz: healthz.clone(),
            mode: self.mode,
            ..Default::default()
        };
        let proxy_ready =
            kinet_agent::readiness::follow(proxy_outcomes, readiness, |r| &mut r.proxy);
        let config = kinet_proxy::ProxyConfig::default();
        tokio::select! {
            _ = proxy_ready => bail!("the service proxy ended"),
            r = kinet_proxy::run_with(self.client, self.node, config, applier, opts) => r.context("service proxy"),
            _ = kinet_proxy::serve_metrics(metrics_listener, vec![metrics, policy_metrics]) => bail!("the metrics server ended"),
            _ = kinet_proxy::serve_healthz(healthz_listener, healthz) => bail!("the proxy healthz server ended"),
        }
    }
}

/// The node API's view of the pods: the runtime's streaming view.
struct Streaming(Arc<Runtime>);

impl kinet_node_api::Pods for Streaming {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<kinet_node_api::ContainerInfo, String> {
        let (sandbox_pid, c) = self.0.container(namespace, pod, container)?;
        Ok(kinet_node_api::ContainerInfo {
            name: c.name,
            sandbox_pid,
            running: c.running,
            env: c.env,
            enter: c.enter,
            log: c.log,
            previous_log: c.previous_log,
            stdin: c.stdin,
            tty: c.tty,
        })
    }
}
