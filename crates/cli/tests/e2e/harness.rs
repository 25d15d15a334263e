//! Shared harness: a cluster in its own temporary KINET_HOME, torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A cluster name no other test (or test run) uses: `t<pid><counter>`.
pub fn unique_name() -> String {
    format!(
        "t{}{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An empty KINET_HOME under /tmp, removed on drop.
pub fn temp_home() -> TempDir {
    tempfile::Builder::new()
        .prefix("kinet-e2e-")
        .tempdir_in("/tmp")
        .expect("creating a temporary KINET_HOME")
}

/// Runs the built `kinet` with `KINET_HOME=home`.
pub fn kinet(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinet"))
        .args(args)
        .env("KINET_HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running kinet")
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether any process is `kinet serve --name NAME` (a zombie has no cmdline).
pub fn control_plane_running(name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            return false;
        };
        let argv: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
        argv.len() == 4
            && argv[0].ends_with(b"kinet")
            && argv[1..] == [b"serve".as_slice(), b"--name", name.as_bytes()]
    })
}

/// A cluster made by `kinet up`; `kinet down` runs and the home is removed on drop,
/// also when the test panicked.
pub struct Cluster {
    pub name: String,
    pub home: PathBuf,
    pub kubeconfig: PathBuf,
    cache_dir: PathBuf,
    // Dropped (removed) after `Drop::drop` has run `kinet down`.
    _home_dir: TempDir,
}

impl Cluster {
    /// Names and homes a cluster without starting it.
    pub fn new() -> Cluster {
        let home_dir = temp_home();
        let home = home_dir.path().to_path_buf();
        let name = unique_name();
        Cluster {
            kubeconfig: home.join(&name).join("kubeconfig"),
            cache_dir: home.join("kubectl-cache"),
            name,
            home,
            _home_dir: home_dir,
        }
    }

    /// `kinet up --nodes N --offline-images` (tests never pull from the internet); panics
    /// (after cleaning up) if it fails.
    pub fn up(nodes: usize) -> Cluster {
        Cluster::up_with(nodes, &[])
    }

    /// [`Cluster::up`] with more `kinet up` flags.
    pub fn up_with(nodes: usize, flags: &[&str]) -> Cluster {
        let cluster = Cluster::new();
        let nodes = nodes.to_string();
        let mut args = vec!["up", "--nodes", &nodes, "--offline-images"];
        args.extend(flags);
        let out = cluster.kinet(&args);
        assert!(out.status.success(), "kinet up failed\n{}", show(&out));
        cluster
    }

    /// The cluster's state folder, `$KINET_HOME/<name>`.
    pub fn state_dir(&self) -> PathBuf {
        self.home.join(&self.name)
    }

    /// Runs `kinet <args> --name <name>` for subcommands that take a name.
    pub fn kinet(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--name", &self.name]);
        kinet(&self.home, &all)
    }

    /// A kubectl command against this cluster, with its own discovery cache.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        // The global flag goes first so that args after a `--` stay untouched.
        let mut cmd = Command::new("kubectl");
        cmd.arg(format!("--cache-dir={}", self.cache_dir.display()))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("running kubectl")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed\n{}",
            show(&out)
        );
        stdout(&out)
    }

    /// The control plane's log, for debugging failed assertions.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("logs/control-plane.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.state_dir().exists() {
            return;
        }
        let out = self.kinet(&["down"]);
        if !out.status.success() {
            eprintln!("cleanup: kinet down failed\n{}", show(&out));
        }
    }
}

/// Whether any process is `kinet agent --name NAME ...` (a zombie has no cmdline).
pub fn agent_running(name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            return false;
        };
        let argv: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
        argv.len() == 6
            && argv[0].ends_with(b"kinet")
            && argv[1..4] == [b"agent".as_slice(), b"--name", name.as_bytes()]
    })
}

impl Cluster {
    /// `kinet node exec --name <name> <node> -- <cmd...>`.
    pub fn node_exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut all = vec!["node", "exec", "--name", &self.name, node, "--"];
        all.extend(cmd);
        kinet(&self.home, &all)
    }
}

pub use kinet_cluster::proxy_mode::ProxyMode;

/// Defines, for each named case `fn case(mode: ProxyMode)`, a module of two tests,
/// `case::nftables` and `case::iptables`: Services and policies must behave the same
/// with either of kube-proxy's layouts.
macro_rules! in_both_proxy_modes {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::harness::ProxyMode;
            #[test]
            fn nftables() {
                super::$case(ProxyMode::Nftables)
            }
            #[test]
            fn iptables() {
                super::$case(ProxyMode::Iptables)
            }
        }
    )*};
}
pub(crate) use in_both_proxy_modes;

impl Cluster {
    /// [`Cluster::up`] with the service proxy in `mode`.
    pub fn up_in(mode: ProxyMode, nodes: usize) -> Cluster {
        Cluster::up_with(nodes, &["--proxy-mode", mode.as_str()])
    }

    /// The proxy mode `kinet up` recorded for this cluster.
    pub fn proxy_mode(&self) -> ProxyMode {
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.state_dir().join("cluster.json")).unwrap(),
        )
        .unwrap();
        serde_json::from_value(info["proxy_mode"].clone()).expect("cluster.json proxy_mode")
    }

    /// The service rules on `node` as its proxy mode keeps them: `nft list table ip kinet`,
    /// or `iptables-save`.
    pub fn proxy_rules(&self, node: &str) -> String {
        let cmd: &[&str] = match self.proxy_mode() {
            ProxyMode::Nftables => &["nft", "list", "table", "ip", "kinet"],
            ProxyMode::Iptables => &["iptables-save"],
        };
        let out = self.node_exec(node, cmd);
        assert!(out.status.success(), "{node}: {}", show(&out));
        stdout(&out)
    }
}

/// Whether `rules` (from [`Cluster::proxy_rules`]) dispatch a Service port's ClusterIP: an
/// nftables chain named `ns/svc/proto/port`, or a KUBE-SERVICES rule commented
/// `ns/svc:port cluster IP` (kube-proxy leaves out `:port` for an unnamed port).
pub fn rules_name_port(
    mode: ProxyMode,
    rules: &str,
    (ns, svc): (&str, &str),
    proto: &str,
    port: &str,
) -> bool {
    match mode {
        ProxyMode::Nftables => {
            let name = format!("{ns}/{svc}/{proto}/{port}");
            rules
                .lines()
                .any(|l| l.trim_start().starts_with("chain ") && l.contains(&name))
        }
        ProxyMode::Iptables => {
            let port = if port.is_empty() {
                String::new()
            } else {
                format!(":{port}")
            };
            let comment = format!("\"{ns}/{svc}{port} cluster IP\"");
            rules
                .lines()
                .any(|l| l.starts_with("-A KUBE-SERVICES ") && l.contains(&comment))
        }
    }
}
