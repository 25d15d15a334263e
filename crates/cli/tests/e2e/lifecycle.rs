//! `kinet up`, `status`, `kubeconfig`, `down`.

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use crate::harness::{
    agent_running, control_plane_running, kinet, show, stdout, temp_home, Cluster,
};

#[test]
fn up_down_status() {
    let cluster = Cluster::up(1);
    let dir = cluster.state_dir();
    assert!(cluster.kubeconfig.is_file());
    let pid: u32 = fs::read_to_string(dir.join("control-plane.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(control_plane_running(&cluster.name));

    let list = stdout(&kinet(&cluster.home, &["status"]));
    let row = list
        .lines()
        .find(|l| l.starts_with(&cluster.name))
        .unwrap_or_else(|| panic!("{} not listed:\n{list}", cluster.name));
    assert!(row.contains("running"), "{row}");
    let detail = cluster.kinet(&["status"]);
    assert!(detail.status.success(), "{}", show(&detail));
    assert!(
        stdout(&detail).contains("Ready:       yes"),
        "{}",
        show(&detail)
    );

    let out = cluster.kinet(&["kubeconfig"]);
    assert!(out.status.success(), "{}", show(&out));
    let last = stdout(&out).lines().last().unwrap_or_default().to_string();
    assert_eq!(last, cluster.kubeconfig.display().to_string());

    let namespaces = cluster.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    assert!(namespaces.contains("namespace/default"), "{namespaces}");

    // A second `up` notices and leaves it alone.
    let again = cluster.kinet(&["up"]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(
        stdout(&again).contains("already running"),
        "{}",
        show(&again)
    );

    let out = cluster.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!dir.exists(), "state folder left behind");
    assert!(
        !control_plane_running(&cluster.name),
        "pid {pid} still running"
    );
}

#[test]
fn stopped_cluster_restarts_with_same_port_and_certs() {
    let cluster = Cluster::up(2);
    let dir = cluster.state_dir();
    let json = fs::read_to_string(dir.join("cluster.json")).unwrap();
    let ca = fs::read_to_string(dir.join("pki/ca.crt")).unwrap();

    let out = cluster.kinet(&["down", "--keep-data"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!control_plane_running(&cluster.name));
    assert!(!dir.join("control-plane.pid").exists());
    let list = stdout(&kinet(&cluster.home, &["status"]));
    assert!(list.contains("stopped"), "{list}");

    // The stopped cluster keeps its underlay from other clusters' `up` (any KINET_HOME).
    let underlay = serde_json::from_str::<serde_json::Value>(&json).unwrap()["underlay"]
        .as_str()
        .unwrap()
        .replace('/', "-");
    let claim = Path::new("/run/kinet/underlays").join(underlay);
    let claimant = fs::canonicalize(dir.join("cluster.json")).unwrap();
    assert_eq!(
        fs::read_to_string(&claim).unwrap(),
        claimant.to_str().unwrap()
    );

    let out = cluster.kinet(&["up"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(fs::read_to_string(dir.join("cluster.json")).unwrap(), json);
    assert_eq!(fs::read_to_string(dir.join("pki/ca.crt")).unwrap(), ca);
    assert!(control_plane_running(&cluster.name));

    let out = cluster.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!claim.exists(), "the claim outlived its cluster");
}

#[test]
fn up_fails_cleanly_when_the_control_plane_cannot_start() {
    let cluster = Cluster::new();
    // Record a port that is taken, as if a previous `up` had chosen it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    fs::create_dir_all(cluster.state_dir()).unwrap();
    let info = serde_json::json!({
        "name": cluster.name, "port": port, "created": "2025-01-01T00:00:00Z",
        "nodes": 1, "config": null,
    });
    fs::write(cluster.state_dir().join("cluster.json"), info.to_string()).unwrap();

    let out = cluster.kinet(&["up"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited early"), "{}", show(&out));
    assert!(err.contains("Last lines of"), "{}", show(&out));
    assert!(
        err.contains(" ✗ Waiting for the API server"),
        "{}",
        show(&out)
    );
    assert!(!cluster.state_dir().join("control-plane.pid").exists());
    assert!(!control_plane_running(&cluster.name));
    // The certificates and kubeconfig were written before the start failed.
    assert!(cluster.kubeconfig.is_file());
    drop(taken);
}

#[test]
fn down_of_a_missing_cluster_is_a_no_op() {
    let home = temp_home();
    let out = kinet(home.path(), &["down", "--name", "nothere"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("No cluster"), "{}", show(&out));
}

#[test]
fn kubeconfig_of_a_missing_cluster_fails() {
    let home = temp_home();
    let out = kinet(home.path(), &["kubeconfig", "--name", "nothere"]);
    assert!(!out.status.success(), "{}", show(&out));
    let out = kinet(home.path(), &["status", "--name", "nothere"]);
    assert!(!out.status.success(), "{}", show(&out));
}

#[test]
fn invalid_names_are_refused_before_touching_disk() {
    let home = temp_home();
    for name in ["Bad", "../escape", "a-name-that-is-far-too-long"] {
        let out = kinet(home.path(), &["up", "--name", name]);
        assert!(!out.status.success(), "{name}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid cluster name"),
            "{}",
            show(&out)
        );
    }
    assert_eq!(fs::read_dir(home.path()).unwrap().count(), 0);
}

#[test]
fn status_with_no_clusters() {
    let home = temp_home();
    let out = kinet(home.path(), &["status"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("No clusters"), "{}", show(&out));
}

#[test]
fn status_lists_stopped_and_unreadable_clusters() {
    let home = temp_home();
    let good = home.path().join("good");
    fs::create_dir_all(&good).unwrap();
    let info = serde_json::json!({
        "name": "good", "port": 40001, "created": "2025-01-01T00:00:00Z",
        "nodes": 3, "config": null,
    });
    fs::write(good.join("cluster.json"), info.to_string()).unwrap();
    fs::create_dir_all(home.path().join("broken")).unwrap();
    fs::write(home.path().join("broken/cluster.json"), "{not json").unwrap();

    let out = kinet(home.path(), &["status"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("good"), ["good", "stopped", "40001", "3"]);
    assert_eq!(row("broken")[..2], ["broken", "stopped"]);

    let out = kinet(home.path(), &["status", "--name", "good"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("Status:      stopped"),
        "{}",
        show(&out)
    );
}

/// The README's try-it steps on a fresh cluster: `up` returned only once DNS answered, so
/// the last step works at once, with no retry loop.
#[test]
fn readme_try_it_works_right_after_up() {
    let c = Cluster::up(3);
    c.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        "nginx",
        "--replicas",
        "3",
    ]);
    c.kubectl_ok(&["expose", "deployment", "web", "--port", "80"]);
    c.kubectl_ok(&["rollout", "status", "deployment", "web", "--timeout=120s"]);
    let page = c.kubectl_ok(&["exec", "deploy/web", "--", "curl", "-s", "web"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");

    // Supervision on the same cluster: an agent that exits is restarted, one killed with
    // SIGKILL stays dead until `kinet up`.
    let node = format!("{}-worker", c.name);
    let first = agent_pid(&c, &node);
    signal("-TERM", first);
    let line = wait_for_agent(&c, &node, |l| {
        l.contains("agent running") && l.contains("1 restarts")
    });
    let second = agent_pid(&c, &node);
    assert_ne!(first, second, "{line}");

    signal("-KILL", second);
    let line = wait_for_agent(&c, &node, |l| l.contains("agent failed"));
    assert!(line.contains("killed by SIGKILL"), "{line}");
    let out = c.kinet(&["up"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(" ✓ Waiting for nodes to be Ready"));
    wait_for_agent(&c, &node, |l| l.contains("agent running"));
    let page = c.kubectl_ok(&["exec", "deploy/web", "--", "curl", "-s", "web"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");
}

fn agent_pid(c: &Cluster, node: &str) -> u32 {
    let path = c.state_dir().join("agents").join(format!("{node}.pid"));
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `sig` to one of this test's agents.
fn signal(sig: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Polls `kinet status` until the node's line satisfies `ok`; returns that line.
fn wait_for_agent(c: &Cluster, node: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = c.kinet(&["status"]);
        let text = stdout(&out);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{node} ")))
            .unwrap_or_default()
            .to_string();
        if ok(&line) {
            return line;
        }
        assert!(std::time::Instant::now() < deadline, "{}", show(&out));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn up_with_wait_0s_returns_and_the_cluster_still_comes_up() {
    let c = Cluster::new();
    let out = c.kinet(&["up", "--nodes", "1", "--wait", "0s"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(" ✓ Starting agents"), "{}", show(&out));
    assert!(!err.contains("Waiting for nodes"), "{}", show(&out));
    assert!(stdout(&out).contains("is up"), "{}", show(&out));
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=60s",
    ]);
    c.kubectl_ok(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment",
        "coredns",
        "--timeout=60s",
    ]);
}

#[test]
fn up_fails_naming_an_agent_that_dies() {
    let c = Cluster::up(1);
    let out = c.kinet(&["down", "--keep-data"]);
    assert!(out.status.success(), "{}", show(&out));
    // The agent cannot read its credentials, so it exits at once.
    let node = format!("{}-control-plane", c.name);
    let kubeconfig = c.state_dir().join("nodes").join(&node).join("kubeconfig");
    fs::write(&kubeconfig, "not a kubeconfig").unwrap();

    let out = c.kinet(&["up"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the agent of {node} exited")),
        "{}",
        show(&out)
    );
    assert!(err.contains(&format!("logs/{node}.log")), "{}", show(&out));
    assert!(
        err.contains(" ✗ Waiting for nodes to be Ready"),
        "{}",
        show(&out)
    );
    assert!(!stdout(&out).contains("is up"), "{}", show(&out));
    assert!(!control_plane_running(&c.name));
    assert!(!agent_running(&c.name));
}
