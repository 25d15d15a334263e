//! `kinet up` on a host that lacks a program it needs: it stops before creating anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use kinet_cluster::prereqs::PROGRAMS;

use crate::harness::{agent_running, control_plane_running, show, Cluster};

/// `name`'s path in this process's PATH.
fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed on this machine"))
}

/// A PATH directory with every program kinet needs except `without`.
fn path_without(without: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for p in PROGRAMS.iter().filter(|p| p.name != without) {
        std::os::unix::fs::symlink(which(p.name), dir.path().join(p.name)).unwrap();
    }
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lifecycle_up_without_conntrack_names_the_package_and_leaves_nothing() {
    let cluster = Cluster::new();
    let bin = path_without("conntrack");
    let out = Command::new(env!("CARGO_BIN_EXE_kinet"))
        .args(["up", "--name", &cluster.name])
        .env("KINET_HOME", &cluster.home)
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(" ✗ Checking prerequisites"), "{}", show(&out));
    assert!(
        err.contains("program conntrack is missing") && err.contains("apt-get install conntrack"),
        "{}",
        show(&out)
    );
    // Only the missing program is named.
    assert_eq!(err.matches(" is missing").count(), 1, "{}", show(&out));

    assert_eq!(
        entries(&cluster.home),
        Vec::<String>::new(),
        "state written"
    );
    let prefix = format!("kinet-{}-", cluster.name);
    let namespaces: Vec<String> = entries(Path::new("/run/netns"))
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    let host_link = format!(
        "/sys/class/net/{}",
        kinet_cluster::nodes::host_link_name(&cluster.name)
    );
    assert!(!Path::new(&host_link).exists(), "{host_link} left");
    assert!(!control_plane_running(&cluster.name));
    assert!(!agent_running(&cluster.name));
}
