//! What the agent keeps on disk per pod (`<state>/pods/<uid>/pod.json`), so a restarted agent
//! adopts running sandboxes and keeps IPs, and `kinet down` can stop every process it made.
//! Processes are identified by PID plus start time, so a reused PID is never taken for ours.

use std::path::{Path, PathBuf};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::status::Record;

/// A process the agent started: its PID and its start time in clock ticks since boot
/// (field 22 of `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// The PID (also its process group: every process the agent starts leads its group).
    pub pid: u32,
    /// Its start time, to tell it from a later process with the same PID.
    pub start: u64,
}

impl Proc {
    /// The process with `pid` as it is now, if it exists.
    pub fn of(pid: u32) -> Option<Proc> {
        start_time(pid).map(|start| Proc { pid, start })
    }

    /// Whether this very process still runs (not a zombie, not a newer one with its PID).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start) && !is_zombie(self.pid)
    }

    /// Signals its whole process group (shell loops' children too), if it is still ours.
    pub fn signal_group(&self, sig: Signal) {
        if self.alive() {
            let _ = killpg(Pid::from_raw(self.pid as i32), sig);
        }
    }
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) == Some("Z"))
}

/// One pod's sandbox and containers, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The pod's uid.
    pub uid: String,
    /// Namespace and name, for messages and streaming lookups.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's network namespace (`/run/netns/<netns>`); empty on the host network.
    pub netns: String,
    /// `hostNetwork`: the pod is on its node's network (the agent's namespace), with no
    /// namespace, veth or address of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// The pod's address.
    pub ip: std::net::Ipv4Addr,
    /// The host end of its veth on `cbr0`.
    pub host_veth: String,
    /// The pause process holding its namespaces.
    pub pause: Option<Proc>,
    /// Containers, in spec order, with the process of each running instance.
    pub containers: Vec<ContainerRecord>,
}

/// A container and its running process, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// What the status reports.
    pub record: Record,
    /// The running instance's process.
    pub process: Option<Proc>,
}

/// Where a node's pods live on disk.
#[derive(Debug, Clone)]
pub struct PodDirs {
    root: PathBuf,
}

impl PodDirs {
    /// Pods of the node whose state directory is `node_dir`.
    pub fn new(node_dir: &Path) -> PodDirs {
        PodDirs {
            root: node_dir.join("pods"),
        }
    }

    /// The pod's directory.
    pub fn dir(&self, uid: &str) -> PathBuf {
        self.root.join(uid)
    }

    /// The log file of a container instance (`restart` counts from 0).
    pub fn log(&self, uid: &str, container: &str, restart: i32) -> PathBuf {
        self.dir(uid)
            .join("logs")
            .join(container)
            .join(format!("{restart}.log"))
    }

    /// Where a container's shim keeps its stdin FIFO and terminal name.
    pub fn io(&self, uid: &str, container: &str) -> PathBuf {
        self.dir(uid).join("io").join(container)
    }

    /// A container instance's own directory: its layer, root mount point and spec.
    pub fn container(&self, uid: &str, container: &str) -> PathBuf {
        self.dir(uid).join("containers").join(container)
    }

    /// Saves a record atomically (write, then rename).
    pub fn save(&self, r: &PodRecord) -> std::io::Result<()> {
        let dir = self.dir(&r.uid);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("pod.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(r)?)?;
        std::fs::rename(tmp, dir.join("pod.json"))
    }

    /// Every readable record.
    pub fn load_all(&self) -> Vec<PodRecord> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("pod.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Removes a pod's directory (logs included).
    pub fn remove(&self, uid: &str) {
        let _ = std::fs::remove_dir_all(self.dir(uid));
    }

    /// The persisted pod IP allocations.
    pub fn ipam_file(&self) -> PathBuf {
        self.root.join("ipam.json")
    }
}

/// Stops every recorded process of a node (SIGKILL, group-wide, ours only) and deletes the
/// pods' network namespaces: `kinet down` after the agent has stopped.
pub fn kill_all(node_dir: &Path) {
    let dirs = PodDirs::new(node_dir);
    let records = dirs.load_all();
    for r in &records {
        for c in &r.containers {
            if let Some(p) = c.process {
                p.signal_group(Signal::SIGKILL);
            }
        }
        if let Some(p) = r.pause {
            p.signal_group(Signal::SIGKILL);
        }
        if !r.netns.is_empty() {
            let _ = kinet_netns::delete(&r.netns);
        }
        // Unmounts tmpfs volumes, which would outlive the state folder's removal.
        let _ = super::volumes::tear_down(&dirs.dir(&r.uid));
    }
    // A shim whose PID never reached a record (the agent died between spawn and save).
    for p in unrecorded_shims(&dirs.root) {
        p.signal_group(Signal::SIGKILL);
    }
}

/// Shims running for pods under `pods_root`: `kinet shim` processes whose `--io-dir` lies in
/// this node's pod folders, which no other cluster's processes name.
fn unrecorded_shims(pods_root: &Path) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| is_shim_for(&raw, pods_root))
        })
        .filter_map(Proc::of)
        .collect()
}

/// Whether a NUL-separated command line is a `kinet shim` of a pod under `pods_root`.
fn is_shim_for(cmdline: &[u8], pods_root: &Path) -> bool {
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let Some(prefix) = pods_root.to_str().map(|r| format!("--io-dir={r}/")) else {
        return false;
    };
    argv.get(1) == Some(&b"shim".as_slice())
        && argv.iter().any(|a| a.starts_with(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Proc::of(std::process::id()).unwrap();
        assert!(me.alive());
        let other = Proc {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!other.alive());
    }

    #[test]
    fn shims_are_known_by_their_pod_folders() {
        let root = Path::new("/state/c/nodes/n/pods");
        let shim = b"/usr/bin/kinet\0shim\0--log=/state/c/nodes/n/pods/u/logs/c/0.log\0--io-dir=/state/c/nodes/n/pods/u/io/c\0--\0sleep\0";
        assert!(is_shim_for(shim, root));
        let other_node =
            b"/usr/bin/kinet\0shim\0--io-dir=/state/c/nodes/n2/pods/u/io/c\0--\0sleep\0";
        assert!(!is_shim_for(other_node, root));
        let not_a_shim = b"/usr/bin/kinet\0agent\0--io-dir=/state/c/nodes/n/pods/u/io/c\0";
        assert!(!is_shim_for(not_a_shim, root));
    }

    #[test]
    fn records_round_trip_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = PodDirs::new(tmp.path());
        let r = PodRecord {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "p".into(),
            netns: "kinet-x-pod-u1".into(),
            host_network: false,
            ip: "10.244.1.5".parse().unwrap(),
            host_veth: "veth1234".into(),
            pause: None,
            containers: vec![ContainerRecord {
                record: Record::waiting("c", "nginx", "ContainerCreating"),
                process: None,
            }],
        };
        dirs.save(&r).unwrap();
        assert_eq!(dirs.load_all(), vec![r]);
        dirs.remove("u1");
        assert!(dirs.load_all().is_empty());
    }
}
