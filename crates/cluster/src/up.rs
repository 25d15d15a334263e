//! `kinet up`: prepare the state folder, certificates and kubeconfig, start the control
//! plane detached and wait until it is ready. Every step reuses what a previous `up`
//! left, so a stopped cluster restarts with the same certificates, port and data.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kinet_pki::{default_server_sans, Credentials, Pki};
use rand::distr::{Alphanumeric, SampleString};

use crate::apiservers::ApiServer;
use crate::nodes::{self, Plan};
use crate::probe::Probe;
use crate::process::{self, running_pid};
use crate::progress::Step;
use crate::state::{self, absolute_home, ClusterDir, ClusterInfo, PodBackend};
use crate::{prereqs, ready};

/// The ClusterIP of the `kubernetes` service, which the serving certificate must name.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(250);
/// One control-plane node (which also runs pods) and two workers, as the issue asks.
pub const DEFAULT_NODES: usize = 3;

pub struct UpArgs {
    pub name: String,
    pub nodes: Option<usize>,
    pub config: Option<PathBuf>,
    /// `--upstream-dns`: empty keeps what is recorded.
    pub upstream_dns: Vec<std::net::SocketAddr>,
    /// `--backend`, recorded at creation.
    pub backend: Option<state::PodBackend>,
    /// `--wait`: how long to wait for the cluster to be usable; zero returns once the
    /// control plane answers (the nodes and add-ons then come up in the background).
    pub wait: Duration,
    /// `--node-monitor-grace-period`, recorded at creation.
    pub node_monitor_grace_period: Option<Duration>,
    /// `--default-toleration-seconds`, recorded at creation.
    pub default_toleration_seconds: Option<u64>,
    /// `--egress`, recorded at creation.
    pub egress: bool,
    /// `--registry-mirror`, `--insecure-registry`, `--offline-images`, recorded at creation.
    pub registries: kinet_oci_store::Settings,
    /// `--no-ingress`, recorded at creation.
    pub no_ingress: bool,
    /// `--no-dns`, `--no-proxy`, `--no-policy`, recorded at creation.
    pub no_dns: bool,
    pub no_proxy: bool,
    pub no_policy: bool,
    /// `--proxy-mode`, recorded; given again it switches the mode.
    pub proxy_mode: Option<kinet_proxy::ProxyMode>,
    /// `--datastore` with its TLS files, recorded at creation.
    pub datastore: Option<kinet_store::EtcdConfig>,
    /// `--api-servers`, recorded at creation (more than one needs `datastore`).
    pub api_servers: Option<usize>,
}

/// What `up` did, for the CLI to print.
#[derive(Debug)]
pub struct UpReport {
    pub name: String,
    pub port: u16,
    pub kubeconfig: PathBuf,
    /// `Some(pid)` when the control plane was already running (only dead agents restarted).
    pub already_running: Option<u32>,
}

pub async fn up(args: UpArgs) -> Result<UpReport> {
    state::validate_name(&args.name)?;
    crate::process::require_kinet_name()?;
    let home = absolute_home()?;
    let dir = ClusterDir::new(&home, &args.name);
    let existing = dir.exists();
    if existing {
        if let Some(pid) = running_pid(&dir, 0) {
            let mut info = dir.load_info()?;
            // Another API server of `--api-servers` may have died: it comes back.
            start_servers(&dir, &home, &info).await?;
            if args.proxy_mode.is_some_and(|m| m != info.proxy_mode) {
                check_prerequisites(&dir, &args)?;
            }
            if crate::proxy_mode::record(&dir, &mut info, args.proxy_mode)? {
                // Joined hosts' agents read it when they start.
                publish_settings(&admin_client(&dir, &info)?, &info).await?;
                crate::proxy_mode::stop_agents(&dir, &info)?;
            }
            restart_agents(&dir, &home, &info, args.wait).await?;
            return Ok(UpReport {
                name: info.name,
                port: info.port,
                kubeconfig: dir.kubeconfig(),
                already_running: Some(pid),
            });
        }
        eprintln!("Starting cluster \"{}\" ...", args.name);
    } else {
        eprintln!("Creating cluster \"{}\" ...", args.name);
    }
    check_prerequisites(&dir, &args)?;

    let step = Step::start("Preparing state");
    let info = prepare_state(&dir, &args)?;
    step.done();

    let plan = if info.nodes > 0 {
        let step = Step::start("Preparing nodes");
        let plan = nodes::prepare(&dir, &info).await?;
        step.done();
        if plan.egress {
            let forwarding = fs::read_to_string(crate::egress::IP_FORWARD).unwrap_or_default();
            if let Some(note) = crate::egress::forwarding_note(&forwarding) {
                eprintln!("   note: {note}");
            }
        }
        Some(plan)
    } else {
        None
    };
    let info = dir.load_info()?;

    let step = Step::start("Writing certificates");
    let pki = ensure_pki(&dir, &info, plan.as_ref())?;
    ensure_service_account_key(&dir)?;
    if let Some(plan) = &plan {
        nodes::write_credentials(&dir, &pki, plan, info.port)?;
    }
    let kubeconfig = kinet_pki::kubeconfig(
        &info.name,
        &format!("https://127.0.0.1:{}", info.port),
        &pki.ca_cert_pem,
        &Credentials::ClientCert {
            cert_pem: pki.admin_cert_pem.clone(),
            key_pem: pki.admin_key_pem.clone(),
        },
    );
    state::write_file(&dir.kubeconfig(), &kubeconfig, 0o600)?;
    step.done();

    if let Err(e) = start_servers(&dir, &home, &info).await {
        if let Some(plan) = &plan {
            nodes::abandon(&dir, plan).await;
        }
        return Err(e);
    }

    let client = admin_client(&dir, &info)?;
    if let Err(e) = publish_settings(&client, &info).await {
        stop_servers(&dir, &info);
        if let Some(plan) = &plan {
            nodes::abandon(&dir, plan).await;
        }
        return Err(e);
    }
    if let Some(plan) = &plan {
        if let Err(e) = start_nodes(&dir, &home, plan, &client, &info, args.wait).await {
            stop_servers(&dir, &info);
            nodes::abandon(&dir, plan).await;
            return Err(e);
        }
    }

    Ok(UpReport {
        name: info.name,
        port: info.port,
        kubeconfig: dir.kubeconfig(),
        already_running: None,
    })
}

/// Starts the agents of a running cluster that are not running (a killed agent comes back
/// and adopts its node's pods) and waits until the cluster is usable, as a first `up` does.
async fn restart_agents(
    dir: &ClusterDir,
    home: &Path,
    info: &ClusterInfo,
    wait: Duration,
) -> Result<()> {
    if info.nodes == 0 {
        return Ok(());
    }
    let plan = nodes::recorded_plan(info);
    if plan
        .nodes
        .iter()
        .all(|n| nodes::agents::running(dir, &n.name).is_some())
    {
        return Ok(());
    }
    start_nodes(dir, home, &plan, &admin_client(dir, info)?, info, wait).await
}

/// The administrator's client of a running cluster.
fn admin_client(dir: &ClusterDir, info: &ClusterInfo) -> Result<kube::Client> {
    let pki = Pki::load(&dir.pki()).context("loading the cluster PKI")?;
    let url = format!("https://127.0.0.1:{}", info.port);
    Ok(kinet_controllers::client::connect(
        &url,
        &pki.ca_cert_pem,
        &dir.read_token()?,
    )?)
}

/// Publishes what node agents need (see [`crate::published`]).
async fn publish_settings(client: &kube::Client, info: &ClusterInfo) -> Result<()> {
    let settings = crate::published::NodeSettings::of(info);
    crate::published::publish(client, &settings)
        .await
        .context("publishing the cluster's node settings")
}

/// Starts the agents and the add-ons, then (unless `wait` is zero) waits until the cluster
/// is usable: nodes Ready, add-ons Available, cluster DNS answering from a node. A dead agent
/// fails every wait at once.
async fn start_nodes(
    dir: &ClusterDir,
    home: &Path,
    plan: &Plan,
    client: &kube::Client,
    info: &ClusterInfo,
    wait: Duration,
) -> Result<()> {
    let mut agents = nodes::start_agents(dir, home, plan)?;
    if let Err(e) = crate::addons::deploy(client, info).await {
        process::print_log_tail(&dir.control_plane_log(0), 0);
        return Err(e);
    }
    if wait.is_zero() {
        return Ok(());
    }
    let deadline = Instant::now() + wait;
    nodes::wait_ready(dir, plan, client, &mut agents, deadline).await?;
    let addons = crate::addons::deployments(info);
    ready::wait_addons(dir, client, &addons, &mut agents, deadline).await?;
    if info.no_dns {
        return Ok(());
    }
    ready::wait_dns(dir, client, plan, &mut agents, deadline).await
}

/// Stops `up` before it creates anything when the host lacks a program or kernel feature
/// the nodes need (a cluster without nodes runs only the control plane: it needs none).
fn check_prerequisites(dir: &ClusterDir, args: &UpArgs) -> Result<()> {
    let (nodes, backend, egress, proxy_mode) = if dir.exists() {
        let info = dir.load_info()?;
        let mode = args.proxy_mode.unwrap_or(info.proxy_mode);
        (info.nodes, info.backend, info.egress, mode)
    } else {
        (
            args.nodes.unwrap_or(DEFAULT_NODES),
            args.backend.unwrap_or_default(),
            args.egress,
            args.proxy_mode.unwrap_or_default(),
        )
    };
    if nodes == 0 {
        return Ok(());
    }
    let step = Step::start("Checking prerequisites");
    let needs = prereqs::Needs {
        vxlan: backend == PodBackend::Vxlan,
        egress,
        iptables: proxy_mode == kinet_proxy::ProxyMode::Iptables,
    };
    prereqs::require(&prereqs::HostLookup::new(), needs)?;
    step.done();
    Ok(())
}

/// Creates the folders, the admin token and, on first start, `cluster.json` with a
/// free port. On a restart the recorded settings win over the flags.
fn prepare_state(dir: &ClusterDir, args: &UpArgs) -> Result<ClusterInfo> {
    for d in [&dir.root, &dir.data(), &dir.logs()] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if !dir.token().is_file() {
        let token = Alphanumeric.sample_string(&mut rand::rng(), 48);
        state::write_file(&dir.token(), &format!("{token}\n"), 0o600)?;
    }
    if dir.exists() {
        let info = dir.load_info()?;
        if args.nodes.is_some_and(|n| n != info.nodes) {
            eprintln!(
                "   note: cluster \"{}\" was created with --nodes {}; ignoring the new value",
                info.name, info.nodes
            );
        }
        if args.api_servers.is_some_and(|n| n != info.api_servers) {
            eprintln!(
                "   note: cluster \"{}\" was created with --api-servers {}; ignoring the new value",
                info.name, info.api_servers
            );
        }
        if args.egress && !info.egress {
            eprintln!(
                "   note: cluster \"{}\" was created without --egress; it stays isolated",
                info.name
            );
        }
        if args.datastore.is_some()
            && args.datastore.as_ref().map(|d| &d.endpoints)
                != info.datastore.as_ref().map(|d| &d.endpoints)
        {
            bail!(
                "cluster \"{}\" was created with another datastore; it cannot move",
                info.name
            );
        }
        let mut info = info;
        crate::proxy_mode::record(dir, &mut info, args.proxy_mode)?;
        if !args.upstream_dns.is_empty() && args.upstream_dns != info.upstream_dns {
            info.upstream_dns = args.upstream_dns.clone();
            dir.save_info(&info)?;
        }
        return Ok(info);
    }
    let api_servers = args.api_servers.unwrap_or(1);
    if !(1..=crate::apiservers::MAX).contains(&api_servers) {
        bail!("--api-servers must be 1 to {}", crate::apiservers::MAX);
    }
    if api_servers > 1 && args.datastore.is_none() {
        bail!("--api-servers {api_servers} needs a datastore they share: add --datastore etcd://…");
    }
    let config = match &args.config {
        Some(path) => Some(
            fs::canonicalize(path).with_context(|| format!("config file {}", path.display()))?,
        ),
        None => None,
    };
    let info = ClusterInfo {
        name: args.name.clone(),
        port: free_port()?,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        nodes: args.nodes.unwrap_or(DEFAULT_NODES),
        config,
        underlay: None,
        backend: args.backend.unwrap_or_default(),
        node_monitor_grace_period_secs: args
            .node_monitor_grace_period
            .map_or(state::DEFAULT_NODE_MONITOR_GRACE_PERIOD_SECS, |d| {
                d.as_secs()
            }),
        default_toleration_seconds: args
            .default_toleration_seconds
            .unwrap_or(state::DEFAULT_TOLERATION_SECONDS),
        upstream_dns: if args.egress && args.upstream_dns.is_empty() {
            host_upstreams()
        } else {
            args.upstream_dns.clone()
        },
        egress: args.egress,
        registries: args.registries.clone(),
        no_ingress: args.no_ingress,
        no_dns: args.no_dns,
        no_proxy: args.no_proxy,
        no_policy: args.no_policy,
        proxy_mode: args.proxy_mode.unwrap_or_default(),
        datastore: args.datastore.as_ref().map(absolute_files).transpose()?,
        api_servers,
    };
    dir.save_info(&info)?;
    Ok(info)
}

/// The datastore's TLS files as absolute paths (`kinet serve` runs from another folder).
fn absolute_files(etcd: &kinet_store::EtcdConfig) -> Result<kinet_store::EtcdConfig> {
    let absolute = |file: &Option<PathBuf>| -> Result<Option<PathBuf>> {
        file.as_ref()
            .map(|f| fs::canonicalize(f).with_context(|| format!("etcd TLS file {}", f.display())))
            .transpose()
    };
    Ok(kinet_store::EtcdConfig {
        endpoints: etcd.endpoints.clone(),
        ca_file: absolute(&etcd.ca_file)?,
        cert_file: absolute(&etcd.cert_file)?,
        key_file: absolute(&etcd.key_file)?,
    })
}

/// The host's resolvers, for an `--egress` cluster created without `--upstream-dns`.
fn host_upstreams() -> Vec<std::net::SocketAddr> {
    let found = crate::egress::RESOLV_CONFS
        .iter()
        .map(|path| crate::egress::host_resolvers(&fs::read_to_string(path).unwrap_or_default()))
        .find(|resolvers| !resolvers.is_empty())
        .unwrap_or_default();
    match found.as_slice() {
        [] => eprintln!(
            "   note: the host lists no resolver a pod can reach; names outside cluster.local \
             are refused (see --upstream-dns)"
        ),
        list => {
            eprintln!(
            "   note: cluster DNS forwards names outside cluster.local to the host's resolvers {}",
            list.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        )
        }
    }
    found
}

/// Loads the cluster's PKI, generating it when any file is missing. The one serving
/// certificate the API servers share names every address they listen on: with nodes the
/// underlay ones, where the agents reach them.
fn ensure_pki(dir: &ClusterDir, info: &ClusterInfo, plan: Option<&Plan>) -> Result<Pki> {
    let complete = kinet_pki::FILE_NAMES
        .iter()
        .all(|f| dir.pki().join(f).is_file());
    if complete {
        return Pki::load(&dir.pki()).context("loading the cluster PKI");
    }
    let mut sans = default_server_sans(KUBERNETES_SERVICE_IP);
    if let Some(plan) = plan {
        sans.push(plan.underlay.gateway.to_string());
    }
    for addr in info.api_servers().iter().flat_map(|s| s.listen()) {
        let ip = addr.ip().to_string();
        if !sans.contains(&ip) {
            sans.push(ip);
        }
    }
    let pki = Pki::generate(&dir.name, &sans)?;
    pki.save(&dir.pki())?;
    Ok(pki)
}

/// The service-account signing key every API server of the cluster reads (kube-apiserver's
/// `--service-account-key-file`), made before any starts. A cluster from before kept it in
/// its data folder: it moves, so the tokens pods hold stay valid.
fn ensure_service_account_key(dir: &ClusterDir) -> Result<()> {
    let key = dir.service_account_key();
    let old = dir.data().join(kinet_apiserver::tokenrequest::KEY_FILE);
    if !key.exists() && old.exists() {
        fs::rename(&old, &key).with_context(|| format!("moving {}", old.display()))?;
    }
    kinet_apiserver::tokenrequest::TokenIssuer::load_or_generate(&key)
        .context("the service-account key")?;
    Ok(())
}

/// A port that is free now on 127.0.0.1 (the kernel picks it).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("picking a port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts the cluster's API servers that are not running (all of them on a first `up`), one
/// after the other, each ready before the next starts: the first one up leads the control
/// loops. When one does not become ready, those started are stopped and its log is shown.
async fn start_servers(dir: &ClusterDir, home: &Path, info: &ClusterInfo) -> Result<()> {
    let mut started: Vec<(ApiServer, Child)> = Vec::new();
    for server in info.api_servers() {
        if running_pid(dir, server.index).is_some() {
            continue;
        }
        let log = dir.control_plane_log(server.index);
        let log_start = fs::metadata(&log).map_or(0, |m| m.len());
        let step = Step::start(match server.index {
            0 => "Starting control plane",
            _ => "Starting another API server",
        });
        let mut child = process::spawn_control_plane(dir, home, server.index)?;
        dir.write_pid(server.index, child.id())?;
        step.done();
        let step = Step::start("Waiting for the API server");
        let ca_pem = Pki::load(&dir.pki())
            .context("loading the cluster PKI")?
            .ca_cert_pem;
        let probe = Probe::new(&ca_pem, server.loopback, dir.read_token()?)?;
        let ready = wait_ready(&mut child, &probe).await;
        started.push((server, child));
        if let Err(e) = ready {
            drop(step);
            for (server, child) in &mut started {
                abandon(dir, server.index, child);
            }
            process::print_log_tail(&log, log_start);
            return Err(e);
        }
        step.done();
    }
    Ok(())
}

/// Stops every running API server of the cluster (a failed `up` leaves none behind).
fn stop_servers(dir: &ClusterDir, info: &ClusterInfo) {
    for server in info.api_servers() {
        if let Some(pid) = running_pid(dir, server.index) {
            if let Err(e) = process::stop(pid, &dir.name, server.index) {
                eprintln!("   could not stop the control plane: {e:#}");
            }
        }
        let _ = dir.remove_pid(server.index);
    }
}

/// Polls /readyz until 200, failing early if the control plane exits.
async fn wait_ready(child: &mut Child, probe: &Probe) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the control plane exited early ({status})");
        }
        let last = match probe.readyz().await {
            Ok(200) => return Ok(()),
            Ok(code) => format!("/readyz answered {code}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("the API server was not ready within {READY_TIMEOUT:?}: {last}");
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Stops a control plane that never became ready so no orphan is left behind; the
/// state folder stays for inspection (`kinet down` removes it).
fn abandon(dir: &ClusterDir, index: usize, child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        if let Err(e) = process::stop(child.id(), &dir.name, index) {
            eprintln!("   could not stop the control plane: {e:#}");
        }
    }
    let _ = child.wait();
    let _ = dir.remove_pid(index);
}
