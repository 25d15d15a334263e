//! Where a cluster's state lives, and its `cluster.json`.
//!
//! ```text
//! $KINET_HOME/<name>/
//!   cluster.json          name, port, created, nodes, config
//!   kubeconfig            admin kubeconfig (0600)
//!   admin.token           bearer token the API server accepts for the admin (0600)
//!   pki/                  ca.crt ca.key apiserver.crt apiserver.key admin.crt admin.key sa.key
//!   data/                 the API server's durable store
//!   logs/control-plane.log
//!   logs/<node>.log       each node agent's output
//!   control-plane.pid     present while `kinet serve` runs (control-plane-<i>.pid, logs/
//!                         control-plane-<i>.log: the others of `--api-servers`)
//!   agents/<node>.pid     present while the node's `kinet agent` runs
//!   agents/<node>.supervisor.pid  present while its `kinet supervise` runs
//!   agents/<node>.json    the supervisor's record: state, restarts, last error
//!   nodes/<node>/kubeconfig  the agent's credentials (CN system:node:<node>, 0600)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default state root when `KINET_HOME` is unset.
pub const DEFAULT_HOME: &str = "/var/lib/kinet";
/// Cluster names prefix network namespace and link names (15-char limit on links).
pub const MAX_NAME_LEN: usize = 20;

/// What can go wrong with a cluster's state folder.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "invalid cluster name {0:?}: use 1-{MAX_NAME_LEN} lowercase letters, digits and '-', \
         starting with a letter and ending with a letter or digit"
    )]
    InvalidName(String),
    #[error("{op} {}", path.display())]
    Io {
        /// `reading`, `writing`, `removing`.
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { op, path, source }
}

/// The state root: `$KINET_HOME`, or `/var/lib/kinet`.
pub fn kinet_home() -> PathBuf {
    match std::env::var_os("KINET_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_HOME),
    }
}

/// `KINET_HOME` made absolute, since the control plane runs from `/`.
pub fn absolute_home() -> Result<PathBuf> {
    let home = kinet_home();
    if home.is_absolute() {
        return Ok(home);
    }
    let cwd = std::env::current_dir().map_err(io("reading", Path::new(".")))?;
    Ok(cwd.join(home))
}

/// A cluster name must be a short DNS label starting with a letter.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let ends = name
        .bytes()
        .last()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars || !starts || !ends {
        return Err(StateError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// The paths of one cluster's state folder.
#[derive(Debug, Clone)]
pub struct ClusterDir {
    pub name: String,
    pub root: PathBuf,
}

impl ClusterDir {
    pub fn new(home: &Path, name: &str) -> Self {
        ClusterDir {
            name: name.to_string(),
            root: home.join(name),
        }
    }
    pub fn cluster_json(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn token(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// The service-account signing key, shared by the cluster's API servers.
    pub fn service_account_key(&self) -> PathBuf {
        self.pki().join(kinet_apiserver::tokenrequest::KEY_FILE)
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// API server `index`'s log (`--api-servers`): the first keeps a single server's name.
    pub fn control_plane_log(&self, index: usize) -> PathBuf {
        self.logs()
            .join(format!("control-plane{}.log", suffix(index)))
    }
    pub fn pid_file(&self, index: usize) -> PathBuf {
        self.root
            .join(format!("control-plane{}.pid", suffix(index)))
    }
    pub fn agents(&self) -> PathBuf {
        self.root.join("agents")
    }
    pub fn agent_pid_file(&self, node: &str) -> PathBuf {
        self.agents().join(format!("{node}.pid"))
    }
    pub fn supervisor_pid_file(&self, node: &str) -> PathBuf {
        self.agents().join(format!("{node}.supervisor.pid"))
    }
    /// What the agent's supervisor last recorded (`crate::supervisor::Record`).
    pub fn agent_record(&self, node: &str) -> PathBuf {
        self.agents().join(format!("{node}.json"))
    }
    pub fn agent_log(&self, node: &str) -> PathBuf {
        self.logs().join(format!("{node}.log"))
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
    pub fn node_kubeconfig(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("kubeconfig")
    }

    /// A cluster exists once its `cluster.json` has been written (the last step of
    /// preparing state, so a half-prepared folder does not count).
    pub fn exists(&self) -> bool {
        self.cluster_json().is_file()
    }

    pub fn load_info(&self) -> Result<ClusterInfo> {
        let path = self.cluster_json();
        let text = fs::read_to_string(&path).map_err(io("reading", &path))?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path, source })
    }

    pub fn save_info(&self, info: &ClusterInfo) -> Result<()> {
        let text = serde_json::to_string_pretty(info).expect("ClusterInfo is plain data") + "\n";
        write_file(&self.cluster_json(), &text, 0o644)
    }

    /// The recorded PID of API server `index`, if the file exists and parses.
    pub fn read_pid(&self, index: usize) -> Option<u32> {
        fs::read_to_string(self.pid_file(index))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn write_pid(&self, index: usize, pid: u32) -> Result<()> {
        write_file(&self.pid_file(index), &format!("{pid}\n"), 0o644)
    }

    pub fn remove_pid(&self, index: usize) -> Result<()> {
        let path = self.pid_file(index);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &path)(e)),
            _ => Ok(()),
        }
    }

    pub fn read_token(&self) -> Result<String> {
        let path = self.token();
        let text = fs::read_to_string(&path).map_err(io("reading", &path))?;
        Ok(text.trim().to_string())
    }
}

/// `-<index>` after the names of API server `index`'s files, none for the first.
fn suffix(index: usize) -> String {
    match index {
        0 => String::new(),
        i => format!("-{i}"),
    }
}

/// What `cluster.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    /// The API server's port on 127.0.0.1, fixed at the first `up`.
    pub port: u16,
    /// RFC 3339 time of the first `up`.
    pub created: String,
    /// Node count, fixed at creation (0: a control plane without nodes).
    pub nodes: usize,
    /// The `--config` file given at creation, made absolute.
    pub config: Option<PathBuf>,
    /// The underlay subnet claimed at the first `up` with nodes (kept across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<kinet_ipam::Ipv4Cidr>,
    /// `kinet up --backend`: how pod traffic crosses nodes, fixed at creation.
    #[serde(default)]
    pub backend: PodBackend,
    /// `kinet up --upstream-dns`: where cluster DNS forwards names outside the zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_dns: Vec<std::net::SocketAddr>,
    /// `kinet up --node-monitor-grace-period`: seconds a node may go without a heartbeat
    /// before it is NotReady, fixed at creation (kube-controller-manager's default 40).
    #[serde(default = "default_node_monitor_grace_period_secs")]
    pub node_monitor_grace_period_secs: u64,
    /// `kinet up --default-toleration-seconds`: the not-ready/unreachable tolerations
    /// admission adds to pods, fixed at creation (kube-apiserver's default 300).
    #[serde(default = "default_toleration_seconds")]
    pub default_toleration_seconds: u64,
    /// `kinet up --egress`, fixed at creation: pods and nodes may reach beyond the cluster
    /// through the host (see `crate::egress`). Off: isolated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
    /// `kinet up --registry-mirror`, `--insecure-registry`, `--offline-images`, fixed at
    /// creation: where the nodes pull images from.
    #[serde(default, skip_serializing_if = "kinet_oci_store::Settings::is_empty")]
    pub registries: kinet_oci_store::Settings,
    /// `kinet up --no-ingress`, fixed at creation: no ingress controller add-on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_ingress: bool,
    /// `kinet up --no-dns`, fixed at creation: no cluster DNS add-on (`kinet manifests dns`
    /// may provide it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_dns: bool,
    /// `kinet up --no-proxy`, fixed at creation: agents run no service proxy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_proxy: bool,
    /// `kinet up --no-policy`, fixed at creation: agents enforce no NetworkPolicy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_policy: bool,
    /// `kinet up --proxy-mode`: nftables (default) or iptables; a later `up` may switch it.
    #[serde(default)]
    pub proxy_mode: kinet_proxy::ProxyMode,
    /// `kinet up --datastore etcd://…` and its TLS files, fixed at creation: the etcd cluster
    /// holding the objects. None: SQLite in the cluster's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<kinet_store::EtcdConfig>,
    /// `kinet up --api-servers`, fixed at creation: how many `kinet serve` share the datastore
    /// (see [`crate::apiservers`]).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub api_servers: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl ClusterInfo {
    /// Where each of its API servers listens.
    pub fn api_servers(&self) -> Vec<crate::apiservers::ApiServer> {
        let underlay = self.underlay.filter(|_| self.nodes > 0);
        crate::apiservers::plan(self.api_servers, self.port, underlay)
    }
}

pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD_SECS: u64 = 40;
pub const DEFAULT_TOLERATION_SECONDS: u64 = 300;

fn default_node_monitor_grace_period_secs() -> u64 {
    DEFAULT_NODE_MONITOR_GRACE_PERIOD_SECS
}

fn default_toleration_seconds() -> u64 {
    DEFAULT_TOLERATION_SECONDS
}

/// flannel's backends: the VXLAN overlay (`flannel.1`), or plain routes via the other
/// nodes' underlay addresses (`host-gw`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PodBackend {
    #[default]
    Vxlan,
    HostGw,
}

impl PodBackend {
    pub fn cni(self) -> kinet_cni::Backend {
        match self {
            PodBackend::Vxlan => kinet_cni::Backend::Vxlan,
            PodBackend::HostGw => kinet_cni::Backend::HostGw,
        }
    }
}

/// Every cluster folder under `home` that has a `cluster.json`, sorted by name.
pub fn list_clusters(home: &Path) -> Result<Vec<ClusterDir>> {
    let entries = match fs::read_dir(home) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading", home)(e)),
    };
    let mut dirs: Vec<ClusterDir> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| validate_name(name).is_ok())
        .map(|name| ClusterDir::new(home, &name))
        .filter(ClusterDir::exists)
        .collect();
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(dirs)
}

/// Writes a file with `mode`, also when it already existed with a looser one.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    kinet_pki::write_file(path, contents, mode).map_err(io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for name in ["kinet", "a", "t12345", "dev-1", "abcdefghijklmnopqrst"] {
            validate_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn rejects_what_would_break_names_or_paths() {
        for name in [
            "",
            "Kinet",
            "1abc",
            "-abc",
            "abc-",
            "a_b",
            "a.b",
            "../x",
            "a/b",
            "abcdefghijklmnopqrstu",
        ] {
            assert!(validate_name(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn layout_is_under_home_slash_name() {
        let dir = ClusterDir::new(Path::new("/h"), "c1");
        assert_eq!(dir.root, Path::new("/h/c1"));
        assert_eq!(dir.cluster_json(), Path::new("/h/c1/cluster.json"));
        assert_eq!(dir.kubeconfig(), Path::new("/h/c1/kubeconfig"));
        assert_eq!(dir.pki(), Path::new("/h/c1/pki"));
        assert_eq!(dir.data(), Path::new("/h/c1/data"));
        assert_eq!(
            dir.control_plane_log(0),
            Path::new("/h/c1/logs/control-plane.log")
        );
        assert_eq!(dir.pid_file(0), Path::new("/h/c1/control-plane.pid"));
        assert_eq!(
            dir.control_plane_log(2),
            Path::new("/h/c1/logs/control-plane-2.log")
        );
        assert_eq!(dir.pid_file(1), Path::new("/h/c1/control-plane-1.pid"));
        assert_eq!(dir.agent_pid_file("w"), Path::new("/h/c1/agents/w.pid"));
        assert_eq!(dir.agent_log("w"), Path::new("/h/c1/logs/w.log"));
        assert_eq!(
            dir.node_kubeconfig("w"),
            Path::new("/h/c1/nodes/w/kubeconfig")
        );
    }

    #[test]
    fn info_round_trips_and_lists() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(home.path(), "one");
        assert!(!dir.exists());
        fs::create_dir_all(&dir.root).unwrap();
        // A folder without cluster.json (half-prepared) is not a cluster.
        assert!(list_clusters(home.path()).unwrap().is_empty());
        let info = ClusterInfo {
            name: "one".into(),
            port: 43210,
            created: "2025-01-01T00:00:00Z".into(),
            nodes: 3,
            config: Some("/etc/kinet.yaml".into()),
            underlay: Some("172.18.0.0/16".parse().unwrap()),
            backend: PodBackend::HostGw,
            upstream_dns: vec!["192.0.2.1:53".parse().unwrap()],
            node_monitor_grace_period_secs: 5,
            default_toleration_seconds: 10,
            egress: true,
            registries: kinet_oci_store::Settings::default(),
            no_ingress: true,
            no_dns: true,
            no_proxy: true,
            no_policy: false,
            proxy_mode: kinet_proxy::ProxyMode::Iptables,
            datastore: Some(kinet_store::EtcdConfig {
                endpoints: vec!["127.0.0.1:2379".into()],
                ca_file: Some("/etc/etcd/ca.pem".into()),
                ..Default::default()
            }),
            api_servers: 2,
        };
        dir.save_info(&info).unwrap();
        assert_eq!(dir.load_info().unwrap(), info);
        fs::create_dir_all(home.path().join("Not-A-Cluster")).unwrap();
        let names: Vec<_> = list_clusters(home.path())
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["one"]);
    }

    #[test]
    fn errors_name_the_file_and_keep_the_cause() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(home.path(), "e");
        match dir.load_info().unwrap_err() {
            StateError::Io { op, path, source } => {
                assert_eq!((op, path), ("reading", dir.cluster_json()));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            e => panic!("{e:?}"),
        }
        fs::create_dir_all(&dir.root).unwrap();
        fs::write(dir.cluster_json(), "{not json").unwrap();
        let e = dir.load_info().unwrap_err();
        assert!(matches!(e, StateError::Parse { .. }), "{e:?}");
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert!(
            chain.starts_with("parsing ") && chain.contains("key must be a string"),
            "{chain}"
        );
    }

    #[test]
    fn old_cluster_json_gets_the_node_lifecycle_defaults() {
        let info: ClusterInfo = serde_json::from_str(
            r#"{"name":"o","port":1,"created":"2025-01-01T00:00:00Z","nodes":1,"config":null}"#,
        )
        .unwrap();
        assert_eq!(info.node_monitor_grace_period_secs, 40);
        assert_eq!(info.default_toleration_seconds, 300);
        assert_eq!(info.api_servers, 1);
    }

    #[test]
    fn pid_file_round_trip() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(home.path(), "p");
        fs::create_dir_all(&dir.root).unwrap();
        assert_eq!(dir.read_pid(0), None);
        dir.write_pid(0, 4242).unwrap();
        dir.write_pid(1, 4343).unwrap();
        assert_eq!(dir.read_pid(0), Some(4242));
        assert_eq!(dir.read_pid(1), Some(4343));
        dir.remove_pid(0).unwrap();
        dir.remove_pid(0).unwrap();
        assert_eq!(dir.read_pid(0), None);
        assert_eq!(dir.read_pid(1), Some(4343));
    }

    #[test]
    fn missing_home_lists_nothing() {
        let home = tempfile::tempdir().unwrap();
        assert!(list_clusters(&home.path().join("nope")).unwrap().is_empty());
    }
}
