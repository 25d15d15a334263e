//! Durability: every create kubectl reported as successful survives a SIGKILL of the control
//! plane in the middle of a stream of creates, and resourceVersions carry on after the restart
//! from at least the largest one acknowledged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{show, Cluster};

const TOTAL: usize = 1000;
const WORKERS: usize = 4;

#[test]
fn acknowledged_creates_survive_kill_9() {
    acknowledged_creates_survive_kill_9_on(Arc::new(Cluster::up(1)));
}

/// The case on a cluster of its own (its control plane is killed); `etcd.rs` runs it on an
/// etcd-backed one.
pub(crate) fn acknowledged_creates_survive_kill_9_on(c: Arc<Cluster>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let attempted = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (c, acked, attempted) = (c.clone(), acked.clone(), attempted.clone());
            std::thread::spawn(move || {
                for i in (w..TOTAL).step_by(WORKERS) {
                    let name = format!("cm-{i}");
                    let out = c.kubectl(&[
                        "create",
                        "configmap",
                        &name,
                        "--from-literal=i=x",
                        "-o",
                        "jsonpath={.metadata.resourceVersion}",
                    ]);
                    attempted.fetch_add(1, Ordering::Relaxed);
                    if out.status.success() {
                        let rv: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                }
            })
        })
        .collect();

    // Kill the control plane (which this test started, through `kinet up`) a third of the way in.
    let deadline = Instant::now() + Duration::from_secs(300);
    while attempted.load(Ordering::Relaxed) < TOTAL / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_9_control_plane(&c);
    std::thread::sleep(Duration::from_millis(300));
    let up = c.kinet(&["up"]);
    assert!(up.status.success(), "restart failed\n{}", show(&up));

    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > TOTAL / 2,
        "too few creates succeeded: {}",
        acked.len()
    );
    let stored = c.kubectl_ok(&[
        "get",
        "configmaps",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let stored: std::collections::HashSet<&str> = stored.split_whitespace().collect();
    let lost: Vec<&str> = acked
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !stored.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // No acknowledged resourceVersion is handed out again after the restart.
    let largest_acked = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    let rv_after = list_rv(&c);
    assert!(
        rv_after >= largest_acked,
        "the list is at resourceVersion {rv_after}, below the acknowledged {largest_acked}"
    );
    let next: u64 = c
        .kubectl_ok(&[
            "create",
            "configmap",
            "after-restart",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .trim()
        .parse()
        .unwrap();
    assert!(
        next > largest_acked,
        "a create after the restart got resourceVersion {next}, not above the acknowledged {largest_acked}"
    );
}

/// SIGKILL to the cluster's first API server (which this test started, through `kinet up`).
pub(crate) fn kill_9_control_plane(c: &Cluster) {
    let pid = std::fs::read_to_string(c.state_dir().join("control-plane.pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// The resourceVersion of a configmap list, read raw (kubectl's own output drops list metadata).
pub(crate) fn list_rv(c: &Cluster) -> u64 {
    let raw = c.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=1",
    ]);
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
