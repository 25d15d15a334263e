//! A container's cgroup under a kinet-owned parent: memory and CPU limits from
//! `resources.limits`, and whether the kernel's OOM killer struck. cgroup v1 (one directory
//! per controller) or v2 (one unified directory).

use std::path::{Path, PathBuf};

/// Where cgroup filesystems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The CFS period kinet uses, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// A container's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu_millis: Option<u64>,
}

/// Which cgroup version the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The host's cgroup version under `root`, if it has one kinet can use.
pub fn detect(root: &Path) -> Option<Version> {
    if root.join("cgroup.controllers").exists() {
        Some(Version::V2)
    } else if root.join("memory").is_dir() {
        Some(Version::V1)
    } else {
        None
    }
}

/// The files to write, as (controller directory, file, value); v1 controllers are `memory`
/// and `cpu`, v2 has one directory (empty controller).
pub fn settings(version: Version, limits: Limits) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    match version {
        Version::V1 => {
            if let Some(m) = limits.memory {
                out.push(("memory", "memory.limit_in_bytes", m.to_string()));
                // No swap beyond the limit, so going over it is an OOM kill (if swap is on).
                out.push(("memory", "memory.memsw.limit_in_bytes", m.to_string()));
            }
            if let Some(c) = limits.cpu_millis {
                out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
                out.push(("cpu", "cpu.cfs_quota_us", quota(c).to_string()));
            }
        }
        Version::V2 => {
            if let Some(m) = limits.memory {
                out.push(("", "memory.max", m.to_string()));
                out.push(("", "memory.swap.max", "0".into()));
            }
            if let Some(c) = limits.cpu_millis {
                out.push(("", "cpu.max", format!("{} {CPU_PERIOD_US}", quota(c))));
            }
        }
    }
    out
}

/// CFS quota for `millis` (the kubelet's floor is 1 ms).
fn quota(millis: u64) -> u64 {
    (millis * CPU_PERIOD_US / 1000).max(1000)
}

/// The controllers kinet uses in `version` (v1 directory names).
fn controllers(version: Version) -> &'static [&'static str] {
    match version {
        Version::V1 => &["memory", "cpu"],
        Version::V2 => &[""],
    }
}

/// `OOMKilled` evidence: the `oom_kill` count in `memory.oom_control` (v1) or
/// `memory.events` (v2).
pub fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: Version,
    /// One directory per controller.
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// The cgroup at `rel` (e.g. `kinet/<cluster>/<pod>/<container>`) under `root`.
    pub fn at(root: &Path, version: Version, rel: &Path) -> Cgroup {
        Cgroup {
            version,
            dirs: controllers(version)
                .iter()
                .map(|c| root.join(c).join(rel))
                .collect(),
        }
    }

    /// Its directories, which the container's process joins.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Makes it (empty: a leftover of a previous instance is removed first) with `limits`.
    pub fn create(&self, root: &Path, limits: Limits) -> std::io::Result<()> {
        self.remove();
        for d in &self.dirs {
            if self.version == Version::V2 {
                enable_controllers(root, d);
            }
            std::fs::create_dir_all(d)?;
        }
        for (controller, file, value) in settings(self.version, limits) {
            let dir = self.dir_of(controller);
            match std::fs::write(dir.join(file), value) {
                Ok(()) => {}
                // No swap accounting on this host: there is no swap to limit.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn dir_of(&self, controller: &str) -> &Path {
        let i = controllers(self.version)
            .iter()
            .position(|c| *c == controller)
            .unwrap_or(0);
        &self.dirs[i]
    }

    /// Whether the OOM killer killed a process of it.
    pub fn oom_killed(&self) -> bool {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(self.dir_of("memory").join(file))
            .map(|t| oom_kills(&t) > 0)
            .unwrap_or(false)
    }

    /// Removes it (it must have no process left); missing is fine.
    pub fn remove(&self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// v2 delegates controllers level by level: each ancestor of `dir` below `root` enables
/// memory and cpu for its children. Best effort: a limit write then says what is missing.
fn enable_controllers(root: &Path, dir: &Path) {
    let mut at = root.to_path_buf();
    let Ok(rel) = dir.strip_prefix(root) else {
        return;
    };
    for part in rel.parent().into_iter().flat_map(|p| p.components()) {
        let _ = std::fs::write(at.join("cgroup.subtree_control"), "+memory +cpu");
        at.push(part);
        let _ = std::fs::create_dir_all(&at);
    }
    let _ = std::fs::write(at.join("cgroup.subtree_control"), "+memory +cpu");
}

/// Removes every cgroup under `rel` (a pod's, or a cluster's), deepest first; true when
/// none is left. Removal comes after the containers were stopped, so a process still in one
/// escaped its shim (which died first): it is killed, as the kubelet kills what is left in a
/// pod's cgroup, and the cgroup goes once it has exited (a later call).
pub fn remove_tree(root: &Path, version: Version, rel: &Path) -> bool {
    controllers(version).iter().all(|c| {
        let dir = root.join(c).join(rel);
        kill_procs(&dir);
        remove_dirs(&dir);
        !dir.exists()
    })
}

/// SIGKILLs the processes of `dir` and the cgroups below it.
fn kill_procs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            kill_procs(&e.path());
        }
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn remove_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_v1_and_v2_files() {
        let l = Limits {
            memory: Some(32 << 20),
            cpu_millis: Some(250),
        };
        assert_eq!(
            settings(Version::V1, l),
            [
                ("memory", "memory.limit_in_bytes", "33554432".to_string()),
                (
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "33554432".to_string()
                ),
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "25000".to_string()),
            ]
        );
        assert_eq!(
            settings(Version::V2, l),
            [
                ("", "memory.max", "33554432".to_string()),
                ("", "memory.swap.max", "0".to_string()),
                ("", "cpu.max", "25000 100000".to_string()),
            ]
        );
        assert!(settings(Version::V1, Limits::default()).is_empty());
        assert_eq!(quota(1), 1000);
    }

    #[test]
    fn oom_kill_counts() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn directories_per_controller() {
        let cg = Cgroup::at(
            Path::new("/sys/fs/cgroup"),
            Version::V1,
            Path::new("kinet/c/u/web"),
        );
        assert_eq!(
            cg.dirs(),
            [
                PathBuf::from("/sys/fs/cgroup/memory/kinet/c/u/web"),
                PathBuf::from("/sys/fs/cgroup/cpu/kinet/c/u/web")
            ]
        );
        let v2 = Cgroup::at(
            Path::new("/sys/fs/cgroup"),
            Version::V2,
            Path::new("kinet/c/u/web"),
        );
        assert_eq!(v2.dirs(), [PathBuf::from("/sys/fs/cgroup/kinet/c/u/web")]);
    }
}
