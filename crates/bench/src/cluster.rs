//! A cluster of a benchmark's own: made with the `kinet` binary running the benchmark, in a
//! temporary state folder, removed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Result};
use kube::Client;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct BenchCluster {
    exe: PathBuf,
    home: tempfile::TempDir,
    pub name: String,
    /// `down` already ran.
    down: bool,
}

impl BenchCluster {
    /// `kinet up --nodes N`; it returns once the cluster is usable.
    pub fn up(nodes: usize) -> Result<BenchCluster> {
        Self::up_with(nodes, &[])
    }

    /// `kinet up --nodes N` with more of `up`'s flags.
    pub fn up_with(nodes: usize, flags: &[&str]) -> Result<BenchCluster> {
        let mut c = BenchCluster {
            exe: std::env::current_exe()?,
            home: tempfile::tempdir()?,
            name: format!(
                "bench{}x{}",
                std::process::id() % 100_000,
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
            down: false,
        };
        let nodes = nodes.to_string();
        let mut args = vec!["up", "--nodes", &nodes];
        args.extend(flags);
        let out = c.kinet(&args)?;
        if !out.status.success() {
            // Nothing is left running, but `down` removes whatever state was written.
            let _ = c.down();
            bail!("kinet up failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(c)
    }

    /// `kinet <args> --name <name>`, which must succeed; its stdout.
    pub fn kinet_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kinet(args)?;
        if !out.status.success() {
            bail!(
                "kinet {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn kinet(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(Command::new(&self.exe)
            .args(args)
            .args(["--name", &self.name])
            .env("KINET_HOME", self.home.path())
            .output()?)
    }

    /// `kinet down`.
    pub fn down(&mut self) -> Result<()> {
        self.down = true;
        let out = self.kinet(&["down"])?;
        if !out.status.success() {
            bail!(
                "kinet down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The cluster's `KINET_HOME` (its image store is under it).
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    pub fn dir(&self) -> PathBuf {
        self.home.path().join(&self.name)
    }

    /// The cluster's state folder as kinet-cluster reads it.
    pub fn cluster_dir(&self) -> kinet_cluster::state::ClusterDir {
        kinet_cluster::state::ClusterDir::new(self.home.path(), &self.name)
    }

    pub async fn client(&self) -> Result<Client> {
        super::fill::client(&self.dir().join("kubeconfig")).await
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.kinet(&["down"]);
        }
    }
}
