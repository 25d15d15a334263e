//! Network namespaces made (and removed on Drop) by the tests, and threads
//! that run inside them. Everything is named `kinet-t<pid>-<n>`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{setns, CloneFlags};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// These tests change kernel state and need root.
pub fn root() -> bool {
    kinet_testkit::root("network namespaces and nftables")
}

/// Runs a command, panicking with its stderr if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`ip netns add`), deleted on Drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("kinet-t{}-{n}{role}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Runs `f` on a fresh thread that entered this namespace; the thread
    /// ends with `f`, so no other code ever runs in the wrong namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also removes its links and nft tables.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Connects `node` to a new "pod" namespace the way a ptp CNI plugin does: a
/// veth pair, the pod's address on its end, a /32 route to it on the node
/// end, and the node end's address as the pod's default gateway.
pub fn add_pod(node: &Netns, pod: &Netns, idx: usize, pod_ip: &str, gw: &str) {
    let host_if = format!("kv{}h{idx}", std::process::id() % 100_000);
    // Created inside the node namespace, so nothing touches the host's links.
    node.exec(&[
        "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    node.exec(&["ip", "addr", "add", &format!("{gw}/32"), "dev", &host_if]);
    node.exec(&["ip", "link", "set", &host_if, "up"]);
    node.exec(&[
        "ip",
        "route",
        "add",
        &format!("{pod_ip}/32"),
        "dev",
        &host_if,
    ]);
    pod.exec(&["ip", "addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"]);
    pod.exec(&["ip", "link", "set", "eth0", "up"]);
    pod.exec(&["ip", "route", "add", gw, "dev", "eth0"]);
    pod.exec(&["ip", "route", "add", "default", "via", gw, "dev", "eth0"]);
}

/// An `nft list` output as sorted, trimmed lines, so two listings compare regardless of
/// element order.
pub fn sorted_lines(listing: &str) -> Vec<String> {
    let mut lines: Vec<String> = listing
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}
