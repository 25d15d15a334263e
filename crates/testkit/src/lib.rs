//! Test support. The crate root: an in-process API server with its own temp state folder, PKI
//! and loopback port, and a kube client authenticated with a bearer token; dropping it stops
//! the server and removes the folder. [`oci`]: images tests build; [`registry`]: a registry
//! on loopback serving them; [`pod`]: a sandbox process and a node agent's view of it;
//! [`etcd`]: a real etcd cluster on loopback; [`host`]: a simulated host for `kinet join`.

pub mod etcd;
pub mod host;
pub mod oci;
pub mod pod;
pub mod registry;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use kinet_apiserver::{Checks, ServeConfig, TokenUser};
use kinet_pki::Pki;

const TOKEN: &str = "kinet-testkit-admin-token";
/// A user outside `system:masters`: RBAC decides what it may do.
const USER_TOKEN: &str = "kinet-testkit-user-token";
/// The name [`TestApi::user_client`] authenticates as.
pub const USER: &str = "testkit-user";

/// A running API server.
pub struct TestApi {
    pub url: String,
    pub ca_pem: String,
    pub token: String,
    /// The control loops' own tokens, which this server accepts.
    controllers: Vec<kinet_controllers::identity::Credential>,
    task: tokio::task::JoinHandle<Result<(), kinet_apiserver::ServeError>>,
    _dir: tempfile::TempDir,
    /// What the servers of one cluster share ([`TestApi::cluster_on_etcd`]).
    _shared: Option<Arc<Shared>>,
}

/// One cluster's CA and service-account key, for several servers.
struct Shared {
    pki: Pki,
    dir: tempfile::TempDir,
}

impl Shared {
    fn service_account_key_file(&self) -> std::path::PathBuf {
        self.dir
            .path()
            .join(kinet_apiserver::tokenrequest::KEY_FILE)
    }
}

impl TestApi {
    /// Starts a server on a free loopback port and waits until it answers.
    pub async fn start() -> anyhow::Result<TestApi> {
        TestApi::start_with(Checks::default()).await
    }

    /// Like [`TestApi::start`], with `health` holding checks beside the server's own.
    pub async fn start_with(health: Checks) -> anyhow::Result<TestApi> {
        TestApi::start_inner(health, true, None, None).await
    }

    /// A server storing in the etcd at `url` (`kinet up --datastore`); several of them serve
    /// one cluster. The crate under test must enable `kinet-store/etcd`.
    pub async fn on_etcd(url: &str) -> anyhow::Result<TestApi> {
        TestApi::start_on(Some(url), true).await
    }

    /// A server on the etcd at `etcd` or, without one, on SQLite in its temp folder. Without
    /// `authorization` every authenticated request is allowed: the baseline of `kinet bench
    /// api`'s authorization figures.
    pub async fn start_on(etcd: Option<&str>, authorization: bool) -> anyhow::Result<TestApi> {
        let etcd = etcd
            .map(kinet_store::EtcdConfig::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        TestApi::start_inner(Checks::default(), authorization, etcd, None).await
    }

    /// `count` servers of one cluster on the etcd at `url`: one CA and one service-account
    /// key, as `kinet up --api-servers` gives its servers.
    pub async fn cluster_on_etcd(url: &str, count: usize) -> anyhow::Result<Vec<TestApi>> {
        let etcd = kinet_store::EtcdConfig::parse(url).map_err(anyhow::Error::msg)?;
        let shared = Arc::new(Shared {
            pki: new_pki()?,
            dir: tempfile::tempdir()?,
        });
        let mut servers = Vec::with_capacity(count);
        for _ in 0..count {
            let server = TestApi::start_inner(
                Checks::default(),
                true,
                Some(etcd.clone()),
                Some(shared.clone()),
            )
            .await?;
            servers.push(server);
        }
        Ok(servers)
    }

    async fn start_inner(
        health: Checks,
        authorization: bool,
        etcd: Option<kinet_store::EtcdConfig>,
        shared: Option<Arc<Shared>>,
    ) -> anyhow::Result<TestApi> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let pki = match &shared {
            Some(shared) => shared.pki.clone(),
            None => new_pki()?,
        };
        let service_account_key_file = match &shared {
            Some(shared) => shared.service_account_key_file(),
            None => dir.path().join(kinet_apiserver::tokenrequest::KEY_FILE),
        };
        let controllers = kinet_controllers::identity::generate();
        let controller_tokens = controllers.iter().map(|c| TokenUser {
            token: c.token.clone(),
            user: c.user.clone(),
            groups: c.groups.clone(),
        });
        let config = ServeConfig {
            authorization,
            cluster: "testkit".into(),
            data_dir: dir.path().join("data"),
            etcd,
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))],
            ca_cert_pem: pki.ca_cert_pem.clone(),
            server_cert_pem: pki.server_cert_pem.clone(),
            server_key_pem: pki.server_key_pem.clone(),
            service_account_key_file,
            tokens: vec![
                TokenUser {
                    token: TOKEN.into(),
                    user: "kubernetes-admin".into(),
                    groups: vec!["system:masters".into()],
                },
                TokenUser {
                    token: USER_TOKEN.into(),
                    user: USER.into(),
                    groups: vec![],
                },
            ]
            .into_iter()
            .chain(controller_tokens)
            .collect(),
            admission: Default::default(),
            metrics: None,
            health,
        };
        let task = tokio::spawn(kinet_apiserver::run(config));
        let mut api = TestApi {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: pki.ca_cert_pem,
            token: TOKEN.into(),
            controllers,
            task,
            _dir: dir,
            _shared: shared,
        };
        let client = api.client()?;
        for _ in 0..200 {
            if client.apiserver_version().await.is_ok() {
                return Ok(api);
            }
            if api.task.is_finished() {
                let why = match (&mut api.task).await {
                    Ok(Err(e)) => format!("{e:#}"),
                    Ok(Ok(())) => "stopped".into(),
                    Err(e) => e.to_string(),
                };
                anyhow::bail!("the API server exited during start: {why}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the API server did not answer within 5 s")
    }

    /// A kube client for this server, as the administrator (`system:masters`).
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kinet_controllers::client::connect(
            &self.url,
            &self.ca_pem,
            &self.token,
        )?)
    }

    /// An administrator's client without kube's retry layer, which would wait out and resend
    /// a 429 or 503 (for tests that check those answers).
    pub fn client_without_retry(&self) -> anyhow::Result<kube::Client> {
        let mut config = kinet_controllers::client::config(&self.url, &self.ca_pem, &self.token)?;
        config.default_retry = false;
        Ok(kube::Client::try_from(config)?)
    }

    /// The control loops' clients, each as its own identity (what `kinet serve` gives them).
    pub fn controller_clients(&self) -> anyhow::Result<kinet_controllers::Clients> {
        Ok(kinet_controllers::Clients::connect(
            &self.url,
            &self.ca_pem,
            &self.controllers,
        )?)
    }

    /// A kube client as [`USER`], who may do only what RBAC grants.
    pub fn user_client(&self) -> anyhow::Result<kube::Client> {
        Ok(kinet_controllers::client::connect(
            &self.url,
            &self.ca_pem,
            USER_TOKEN,
        )?)
    }
}

fn new_pki() -> anyhow::Result<Pki> {
    Ok(Pki::generate(
        "testkit",
        &kinet_pki::default_server_sans("10.96.0.1"),
    )?)
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Set to skip tests that need root instead of failing them.
pub const SKIP_ROOT_VAR: &str = "KINET_SKIP_ROOT_TESTS";

/// Whether a test that needs root (for `what`) can run. Without root it fails, so a run
/// that could not test says so, unless `KINET_SKIP_ROOT_TESTS=1` asks to skip it.
pub fn root(what: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ok = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if ok {
        return true;
    }
    let skip = std::env::var(SKIP_ROOT_VAR).is_ok_and(|v| v == "1");
    assert!(skip, "needs root ({what}); set {SKIP_ROOT_VAR}=1 to skip");
    eprintln!("skipped: needs root ({SKIP_ROOT_VAR}=1)");
    false
}
