//! What a cluster's pods hold on the host: their processes (each pod's whole process trees,
//! from the records the agents keep), the memory those use, and the disk a directory takes.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kinet_agent::pods::{PodDirs, PodRecord};

/// Proportional set size of a process in KiB (shared pages split among their users).
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The parent of every running process.
fn parents() -> HashMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may hold spaces and parentheses: fields start after the last ')'.
            let ppid = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect()
}

/// `roots` and every process descended from them.
fn trees(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in parents() {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo = roots.to_vec();
    while let Some(pid) = todo.pop() {
        out.push(pid);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    out
}

/// The pods the agents of the cluster in `dir` recorded, those `keep` selects.
pub fn pod_records(dir: &Path, keep: impl Fn(&PodRecord) -> bool) -> Vec<(PodDirs, PodRecord)> {
    let Ok(nodes) = std::fs::read_dir(dir.join("nodes")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for node in nodes.flatten() {
        let dirs = PodDirs::new(&node.path());
        for rec in dirs.load_all().into_iter().filter(&keep) {
            out.push((dirs.clone(), rec));
        }
    }
    out
}

/// Every process of the pods those `keep` selects: pause (and the `unshare` holding its
/// namespaces), each container's shim, and everything they started.
pub fn pod_processes(dir: &Path, keep: impl Fn(&PodRecord) -> bool) -> Vec<u32> {
    let roots: Vec<u32> = pod_records(dir, keep)
        .iter()
        .flat_map(|(_, rec)| {
            let containers = rec.containers.iter().filter_map(|c| c.process);
            rec.pause.into_iter().chain(containers).map(|p| p.pid)
        })
        .collect();
    trees(&roots)
}

/// The disk a directory tree takes (allocated blocks, on its own filesystem only), in bytes.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = 0;
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.dev() != top.dev() {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir() {
            todo.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    total
}
