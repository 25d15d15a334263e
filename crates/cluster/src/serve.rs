//! `kinet serve`: the control plane in the foreground (normally started by `kinet up`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kinet_apiserver::{Checks, Endpoint, KubeletClient, MetricsText, ServeConfig, TokenUser};
use kinet_controllers::leaderelection::{Elector, Role, Timing, CONTROLLER_MANAGER_LEASE};
use kinet_pki::{Pki, ADMIN_GROUP, ADMIN_USER};
use tracing_subscriber::EnvFilter;

use crate::state::{self, absolute_home, ClusterDir};

/// `kinet serve --name NAME [--index I]`: API server `I` of the cluster's `--api-servers`.
pub async fn serve(name: &str, index: usize) -> Result<()> {
    init_logging();
    state::validate_name(name)?;
    let dir = ClusterDir::new(&absolute_home()?, name);
    let info = dir.load_info()?;
    let Some(me) = info.api_servers().get(index).copied() else {
        bail!(
            "cluster \"{name}\" has {} API servers; there is no index {index}",
            info.api_servers
        );
    };
    let pki = Pki::load(&dir.pki()).context("loading the cluster PKI")?;
    let token = dir.read_token()?;
    std::fs::create_dir_all(dir.data())?;
    ignore_hangup()?;

    tracing::info!(
        cluster = name,
        port = info.port,
        index,
        pid = std::process::id(),
        "control plane starting"
    );
    // The loops talk to this process's own server: they live and die with it.
    let url = me.url();
    let admin = kinet_controllers::client::connect(&url, &pki.ca_cert_pem, &token)?;
    // Each control loop has its own identity and token, held only in this process.
    let credentials = kinet_controllers::identity::generate();
    let controllers = kinet_controllers::Clients::connect(&url, &pki.ca_cert_pem, &credentials)?;
    // Node agents take logs, exec, attach and port-forward only from this certificate.
    let (cert_pem, key_pem) = pki
        .issue_kubelet_client()
        .context("issuing the kubelet client certificate")?;
    let kubelet = KubeletClient { cert_pem, key_pem };
    // kube-controller-manager's `--cluster-signing-*`: node client CSRs are signed here.
    let signing_ca = pki.clone();
    let loops = Arc::new(kinet_controllers::LoopMetrics::default());
    let loop_metrics = loops.clone();
    // Only the server holding the controller-manager Lease runs the loops (several may serve
    // one etcd). Its name is stable across restarts on one port, so a restarted server takes
    // its own Lease back at once instead of waiting for it to run out.
    let identity = match index {
        0 => format!("{}_{}", hostname(), info.port),
        i => format!("{}_{}-{i}", hostname(), info.port),
    };
    let (elector, role) = Elector::new(
        admin.clone(),
        "kube-system",
        CONTROLLER_MANAGER_LEASE,
        &identity,
        Timing::default(),
    );
    // Ready when another server leads, or once this one's loops run (each then supervised on
    // its own task), and not while one waits to restart or the endpoints loop leaves objects out.
    let health = Checks::default();
    let loop_states = loops.clone();
    health.add("controllers", Endpoint::Ready, move || {
        let r = match &*role.borrow() {
            Role::Leader => controllers_ready(&loop_states),
            Role::Follower { .. } => Ok(()),
            Role::Candidate => Err("campaigning for the controller-manager Lease".to_string()),
        };
        Box::pin(async move { r })
    });
    let api = kinet_apiserver::run_with_kubelet_client(
        ServeConfig {
            authorization: true,
            cluster: info.name.clone(),
            data_dir: dir.data(),
            etcd: info.datastore.clone(),
            listen: me.listen(),
            ca_cert_pem: pki.ca_cert_pem,
            server_cert_pem: pki.server_cert_pem,
            server_key_pem: pki.server_key_pem,
            service_account_key_file: dir.service_account_key(),
            tokens: std::iter::once(TokenUser {
                token,
                user: ADMIN_USER.to_string(),
                groups: vec![ADMIN_GROUP.to_string()],
            })
            .chain(credentials.into_iter().map(|c| TokenUser {
                token: c.token,
                user: c.user,
                groups: c.groups,
            }))
            .collect(),
            admission: kinet_admission::Settings {
                default_toleration_seconds: info.default_toleration_seconds,
            },
            metrics: Some(MetricsText(Arc::new(move || loop_metrics.render()))),
            health,
        },
        Some(kubelet),
    );
    // The control loops are clients of the API like any other; they start once it answers,
    // each on a supervised task of its own, so none can stop the API server.
    let config = kinet_controllers::ControllerConfig {
        node_monitor_grace_period: Duration::from_secs(info.node_monitor_grace_period_secs),
        signing_ca: Some(signing_ca),
        ..Default::default()
    };
    let lb_pool = info.underlay.filter(|_| info.nodes > 0);
    tokio::spawn(async move {
        while admin.apiserver_version().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(cidr) = lb_pool {
            crate::external::ensure_lb_pool(&admin, cidr).await;
        }
        elector
            .run(|| kinet_controllers::start(&controllers, config.clone(), &loops))
            .await;
    });
    let result = api.await;
    // A stale PID file would make the next `up` think we still run (until the PID is reused).
    if dir.read_pid(index) == Some(std::process::id()) {
        let _ = dir.remove_pid(index);
    }
    match &result {
        Ok(()) => tracing::info!("control plane stopped"),
        Err(e) => tracing::error!("control plane failed: {e}"),
    }
    Ok(result?)
}

/// The `controllers` readiness check: every loop running, no object left out by the
/// endpoints loop because it does not decode.
fn controllers_ready(loops: &kinet_controllers::LoopMetrics) -> Result<(), String> {
    let failing = loops
        .failing()
        .into_iter()
        .map(|(name, why)| format!("loop {name} is waiting to restart ({why})"));
    let skipped = loops
        .endpoint_skips
        .skipped()
        .into_iter()
        .map(|(object, error)| format!("the endpoints loop leaves out {object}: {error}"));
    let problems: Vec<String> = failing.chain(skipped).collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("; ")),
    }
}

/// This host's name, the first half of the leader election identity (as kube-controller-
/// manager's `<hostname>_<uuid>`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// A detached control plane must outlive the terminal that ran `kinet up`: taking
/// SIGHUP through tokio replaces its default (terminate) action.
pub fn ignore_hangup() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("ignoring SIGHUP");
        }
    });
    Ok(())
}
