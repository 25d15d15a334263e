//! Issue 11 item 4: the pod lifecycle, end to end with real kubectl. One one-node cluster runs
//! every case at once: probes of each kind in each role (grpc only failing: no built-in image
//! serves the gRPC health protocol), liveness and startup restarts, the
//! crash-loop back-off, the container events, and SIGKILL after the grace period for a process
//! that ignores SIGTERM. No timing assertions: only generous deadlines to wait for a state.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::controllers::until;
use crate::harness::Cluster;
use crate::pods::{apply, json, AGNHOST};

/// Long enough for a loaded 2-core machine; a healthy run needs a fraction of it.
const WAIT: u64 = 120;

/// Every case's pod, each with one container `c`. Probes run every second and give up after
/// one failure where the case is a failure, so that restarts come quickly.
fn pods(marker: &str) -> String {
    let netexec =
        format!("image: {AGNHOST}\n    args: [netexec, --http-port=8080, --udp-port=8081]");
    // As PID 1 of its container, a plain `sleep` would ignore SIGTERM (the kernel's rule for
    // a namespace's init); this shell takes it, as a well-behaved server does.
    let sleeper =
        "image: busybox\n    command: [sh, -c, 'trap \"exit 143\" TERM; sleep 1000 & wait']";
    let every_second = "periodSeconds: 1";
    // A passing liveness probe must not fail on a slow fork under CI's load: the default
    // one-second timeout would count that as a failure.
    let patient = "periodSeconds: 1, timeoutSeconds: 10";
    // Failing probes wait until the sleeper's shell has set its trap: a SIGTERM that reaches a
    // namespace's init before it has a handler is dropped (then only SIGKILL ends it, 137).
    let once_trapped = "initialDelaySeconds: 3, periodSeconds: 1, failureThreshold: 1";
    let cases = [
        (
            "healthy",
            "",
            format!(
                "{netexec}
    startupProbe: {{exec: {{command: [\"true\"]}}, {every_second}}}
    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, {every_second}}}
    livenessProbe: {{tcpSocket: {{port: 8080}}, {patient}}}"
            ),
        ),
        (
            "unready",
            "",
            format!(
                "{netexec}
    readinessProbe: {{httpGet: {{path: \"/echo?code=503\", port: 8080}}, {every_second}}}
    livenessProbe: {{exec: {{command: [\"true\"]}}, {patient}}}"
            ),
        ),
        (
            "grpc-unready",
            "",
            format!(
                "{netexec}
    readinessProbe: {{grpc: {{port: 8080}}, {every_second}}}"
            ),
        ),
        (
            "live-exec",
            "",
            format!(
                "{sleeper}
    livenessProbe: {{exec: {{command: [\"false\"]}}, {once_trapped}}}"
            ),
        ),
        (
            "live-http",
            "",
            format!(
                "{sleeper}
    livenessProbe: {{httpGet: {{path: /, port: 8080}}, {once_trapped}}}"
            ),
        ),
        (
            "startup-tcp",
            "",
            format!(
                "{sleeper}
    startupProbe: {{tcpSocket: {{port: 8080}}, {once_trapped}}}
    readinessProbe: {{exec: {{command: [\"true\"]}}, {every_second}}}"
            ),
        ),
        (
            "crash",
            "",
            "image: busybox\n    command: [sh, -c, \"exit 1\"]".to_string(),
        ),
        (
            "stubborn",
            "  terminationGracePeriodSeconds: 2\n",
            format!(
                "image: busybox\n    command: [sh, -c, 'trap \"\" TERM; sleep 1000; : {marker}']"
            ),
        ),
    ];
    cases
        .map(|(name, spec, container)| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{spec}  containers:\n  - name: c\n    {container}\n")
        })
        .join("---\n")
}

fn pod(c: &Cluster, name: &str) -> Value {
    json(c, &["get", "pod", name])
}

fn container(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn restarts(pod: &Value) -> i64 {
    container(pod)["restartCount"].as_i64().unwrap_or(0)
}

fn condition(pod: &Value, type_: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// `(reason, message)` of the events about pod `name`.
fn events(c: &Cluster, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name}");
    let list = json(c, &["get", "events", "--field-selector", &selector]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("reason"), text("message"))
        })
        .collect()
}

/// Waits until pod `name` has an event with `reason` whose message contains `text`.
fn wait_event(c: &Cluster, name: &str, reason: &str, text: &str) {
    until(c, &format!("{name}: {reason} {text:?}"), WAIT, || {
        let all = events(c, name);
        match all.iter().any(|(r, m)| r == reason && m.contains(text)) {
            true => Ok(()),
            false => Err(format!("{all:?}")),
        }
    })
}

/// Waits until pod `name` was restarted and its previous run is recorded as terminated.
fn wait_restarted(c: &Cluster, name: &str) -> Value {
    until(c, &format!("{name} restarted"), WAIT, || {
        let p = pod(c, name);
        let last = &container(&p)["lastState"]["terminated"];
        match restarts(&p) >= 1 && last.is_object() {
            true => Ok(p),
            false => Err(container(&p).to_string()),
        }
    })
}

/// PIDs of `sh -c <script>` processes whose script contains `marker` (not the shim or
/// nsenter that carry the same words in their arguments).
fn shells_with(marker: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("reading /proc");
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            argv.len() >= 3 && argv[0] == "sh" && argv[1] == "-c" && argv[2].contains(marker)
        })
        .collect()
}

/// Whether the process exists and is not a zombie.
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which ends with the last ')'.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// Whether the process ignores SIGTERM, from the `SigIgn` mask in `/proc/<pid>/status`.
fn ignores_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

#[test]
fn pod_lifecycle() {
    let c = Cluster::up(1);
    let marker = format!("kinet-e2e-stubborn-{}", c.name);
    apply(&c, &pods(&marker));

    a_crashing_container_backs_off_longer_each_time(&c);
    passing_probes_make_a_pod_ready_and_started(&c);
    failing_readiness_keeps_a_running_pod_unready(&c);
    failing_liveness_and_startup_probes_restart_the_container(&c);
    sigkill_follows_sigterm_after_the_grace_period(&c, &marker);

    // Last, so it has been up through everything above: passing probes never restart.
    let healthy = pod(&c, "healthy");
    assert_eq!(restarts(&healthy), 0, "{}", container(&healthy));
}

fn passing_probes_make_a_pod_ready_and_started(c: &Cluster) {
    let p = until(c, "healthy Ready", WAIT, || {
        let p = pod(c, "healthy");
        match condition(&p, "Ready") == "True" {
            true => Ok(p),
            false => Err(p["status"].to_string()),
        }
    });
    let status = container(&p);
    assert_eq!(status["started"], true, "{status}");
    assert_eq!(status["ready"], true, "{status}");
    let reasons: Vec<String> = events(c, "healthy").into_iter().map(|e| e.0).collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
}

fn failing_readiness_keeps_a_running_pod_unready(c: &Cluster) {
    wait_event(
        c,
        "unready",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    );
    // gRPC probes run too, over HTTP/2 to the pod IP: netexec speaks only HTTP/1.
    wait_event(
        c,
        "grpc-unready",
        "Unhealthy",
        "Readiness probe failed: error: health rpc probe failed: rpc error: code = Unknown",
    );
    let p = pod(c, "grpc-unready");
    assert_eq!(condition(&p, "Ready"), "False", "{}", p["status"]);
    let p = pod(c, "unready");
    assert_eq!(p["status"]["phase"], "Running", "{}", p["status"]);
    assert_eq!(condition(&p, "Ready"), "False", "{}", p["status"]);
    assert_eq!(container(&p)["ready"], false, "{}", container(&p));
    assert!(container(&p)["state"]["running"].is_object());
    assert_eq!(
        restarts(&p),
        0,
        "a passing exec liveness probe never restarts"
    );
    let table = c.kubectl_ok(&["get", "pod", "unready", "--no-headers"]);
    let columns: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(columns[1..3], ["0/1", "Running"], "{table}");
}

fn failing_liveness_and_startup_probes_restart_the_container(c: &Cluster) {
    for (name, kind, failure) in [
        ("live-exec", "Liveness", "Liveness probe failed"),
        (
            "live-http",
            "Liveness",
            "Liveness probe failed: Get \"http://",
        ),
        ("startup-tcp", "Startup", "Startup probe failed: dial tcp"),
    ] {
        let p = wait_restarted(c, name);
        let last = &container(&p)["lastState"]["terminated"];
        // SIGTERM ends it: 128 + 15.
        assert_eq!(last["exitCode"], 143, "{last}");
        assert_eq!(last["reason"], "Error", "{last}");
        assert!(last["finishedAt"].is_string(), "{last}");
        let lower = kind.to_lowercase();
        wait_event(
            c,
            name,
            "Killing",
            &format!("Container c failed {lower} probe, will be restarted"),
        );
        wait_event(c, name, "Unhealthy", failure);
    }
    // Its startup never passed, so it never became Ready, though its readiness probe would pass.
    let p = pod(c, "startup-tcp");
    assert_eq!(container(&p)["started"], false, "{}", container(&p));
    assert_eq!(condition(&p, "Ready"), "False", "{}", p["status"]);
}

fn a_crashing_container_backs_off_longer_each_time(c: &Cluster) {
    // Watched from the start: each back-off message shows only while that back-off lasts.
    let (mut messages, mut shown) = (BTreeSet::new(), false);
    let p = until(c, "crash back-off of 20s", WAIT, || {
        let table = c.kubectl_ok(&["get", "pod", "crash", "--no-headers"]);
        shown |= table.split_whitespace().nth(2) == Some("CrashLoopBackOff");
        let p = pod(c, "crash");
        let waiting = &container(&p)["state"]["waiting"];
        if waiting["reason"] == "CrashLoopBackOff" {
            messages.insert(waiting["message"].as_str().unwrap_or_default().to_string());
        }
        match shown && messages.iter().any(|m| m.starts_with("back-off 20s")) {
            true => Ok(p),
            false => Err(format!("{table} {messages:?}")),
        }
    });
    // The back-off doubles: 10s was shown before 20s, for the same container.
    assert!(
        messages.iter().any(|m| m.starts_with("back-off 10s restarting failed container=c pod=crash_default(")),
        "{messages:?}"
    );
    assert!(restarts(&p) >= 2, "{}", container(&p));
    assert_eq!(
        container(&p)["lastState"]["terminated"]["exitCode"],
        1,
        "{}",
        container(&p)
    );
    wait_event(
        c,
        "crash",
        "BackOff",
        "Back-off restarting failed container c in pod crash_default",
    );
}

fn sigkill_follows_sigterm_after_the_grace_period(c: &Cluster, marker: &str) {
    // The shell and its `sleep`, which inherited the ignored SIGTERM.
    let pids = until(c, "stubborn's shell and sleep running", WAIT, || {
        let mut pids = shells_with(marker);
        if let [shell] = pids[..] {
            let children = format!("/proc/{shell}/task/{shell}/children");
            let children = std::fs::read_to_string(children).unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        match pids.len() == 2 && pids.iter().all(|p| ignores_sigterm(*p)) {
            true => Ok(pids),
            false => Err(format!("processes {pids:?}")),
        }
    });
    let start = Instant::now();
    c.kubectl_ok(&["delete", "pod", "stubborn"]);
    // `kubectl delete` waits until the pod is gone, which the agent confirms only once the
    // container is stopped: it ignored SIGTERM, so that took the grace period and a SIGKILL.
    assert!(start.elapsed() >= Duration::from_secs(2));
    // SIGKILL was sent before the deletion was confirmed; the kernel finishes it at once.
    until(c, &format!("{pids:?} dead"), WAIT, || {
        match pids.iter().filter(|p| running(**p)).count() {
            0 => Ok(()),
            n => Err(format!("{n} running")),
        }
    });
    wait_event(c, "stubborn", "Killing", "Stopping container c");
}
