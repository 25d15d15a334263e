//! Issue 10 item 4: the interactive kubectl a learner reaches for, with the real kubectl 1.32:
//! `run -i`/`-it --rm` (container stdin, terminal, resize, exit codes), `attach -i`,
//! `debug` (ephemeral containers), `logs --timestamps/--since-time`, `cp` both ways. Issue 11
//! item 6: a container's process is on record as soon as it exists. One cluster serves the
//! cases that can share it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{show, stdout, Cluster};
use crate::pods::{apply, json, wait_ready};

/// kubectl with `input` on its stdin.
fn kubectl_with_input(c: &Cluster, args: &[&str], input: &str) -> Output {
    let mut cmd = c.kubectl_cmd(args);
    run_with_input(&mut cmd, input)
}

fn run_with_input(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn pod_exists(c: &Cluster, name: &str) -> bool {
    let out = c.kubectl(&["get", "pod", name, "--ignore-not-found", "-o", "name"]);
    !stdout(&out).trim().is_empty()
}

/// Applies pod `name` (label `app=<name>`) with one container, `container` as a YAML flow
/// mapping without the name (it is `name` too), and waits until it is Ready.
fn one_container_pod(c: &Cluster, name: &str, restart: &str, container: &str) {
    let container = container.replacen('{', &format!("{{name: {name}, "), 1);
    apply(
        c,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\n\
             spec:\n  restartPolicy: {restart}\n  containers:\n  - {container}\n"
        ),
    );
    wait_ready(c, &format!("app={name}"), 1);
}

fn wait_phase(c: &Cluster, name: &str, phase: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pod = json(c, &["get", "pod", name]);
        if pod["status"]["phase"] == phase {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never {phase}: {}",
            serde_json::to_string_pretty(&pod["status"]).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn interactive_kubectl_as_on_a_real_cluster() {
    let c = Cluster::up(1);
    run_with_stdin(&c);
    run_on_a_terminal(&c);
    attach_with_stdin(&c);
    logs_with_times(&c);
    cp_both_ways(&c);
    debug_with_an_ephemeral_container(&c);
}

fn run_with_stdin(c: &Cluster) {
    // The acceptance line: stdin reaches the container, its output comes back, --rm removes it.
    let out = kubectl_with_input(
        c,
        &[
            "run",
            "-i",
            "--rm",
            "t",
            "--image=busybox",
            "--restart=Never",
            "--",
            "cat",
        ],
        "hi\n",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).lines().any(|l| l == "hi"), "{}", show(&out));
    assert!(!pod_exists(c, "t"), "--rm left the pod");

    // The container's exit code is kubectl's.
    let out = kubectl_with_input(
        c,
        &[
            "run",
            "-i",
            "--rm",
            "e",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "read line; echo got $line; exit 3",
        ],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stdout(&out).contains("got x"), "{}", show(&out));
}

fn run_on_a_terminal(c: &Cluster) {
    // -it with kubectl on a terminal (script gives it one, sized 91x37): the shell runs on a
    // terminal of its own, sees kubectl's size, and its exit code comes back.
    let kubectl = format!(
        "stty cols 91 rows 37; kubectl --cache-dir={}/kubectl-cache run -it --rm tty \
         --image=busybox --restart=Never -- sh",
        c.home.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-q", "-f", "-e", "-c", &kubectl, "/dev/null"])
        .env("KUBECONFIG", &c.kubeconfig);
    let out = run_with_input(
        &mut script,
        // kubectl sends the size beside the input, as on a real cluster: the shell may read
        // its first line before the size arrives, so it asks for a few seconds.
        "test -t 0 && echo ON-A-TTY; for i in $(seq 30); do [ \"$(stty size)\" != '0 0' ] && break; \
         sleep 0.1; done; stty size | tr ' ' x; exit 5\n",
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(text.contains("ON-A-TTY"), "{}", show(&out));
    assert!(text.contains("37x91"), "no resize: {}", show(&out));
    assert!(!pod_exists(c, "tty"), "--rm left the pod");
}

fn attach_with_stdin(c: &Cluster) {
    // attach -i to a running container whose stdin stays open.
    one_container_pod(
        c,
        "reader",
        "Never",
        r#"{image: busybox, stdin: true, command: ["sh", "-c", "echo started; while read l; do [ \"$l\" = quit ] && exit 0; echo got:$l; done"]}"#,
    );
    let out = kubectl_with_input(c, &["attach", "-i", "reader"], "hello\nquit\n");
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("got:hello"), "{}", show(&out));
    wait_phase(c, "reader", "Succeeded");
}

fn logs_with_times(c: &Cluster) {
    // logs: per-line times, --since-time by them, and the raw bytes without.
    one_container_pod(
        c,
        "talker",
        "Always",
        // The streams are read apart, as a runtime's are: a pause keeps their lines in order.
        r#"{image: busybox, command: ["sh", "-c", "echo early; sleep 1; echo early-err >&2; sleep 2; echo late; sleep 3600"]}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.kubectl_ok(&["logs", "talker"]).contains("late") {
        assert!(Instant::now() < deadline, "talker never said late");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        c.kubectl_ok(&["logs", "talker"]),
        "early\nearly-err\nlate\n"
    );
    let stamped = c.kubectl_ok(&["logs", "talker", "--timestamps"]);
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').expect("time, then the line"))
        .collect();
    assert_eq!(
        lines.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        ["early", "early-err", "late"]
    );
    for (time, _) in &lines {
        chrono::DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time");
    }
    let late_time = lines[2].0;
    assert_eq!(
        c.kubectl_ok(&["logs", "talker", &format!("--since-time={late_time}")]),
        "late\n"
    );
    assert_eq!(
        c.kubectl_ok(&["logs", "talker", "--since=1h"]),
        "early\nearly-err\nlate\n"
    );
    assert_eq!(c.kubectl_ok(&["logs", "talker", "--tail=1"]), "late\n");
    assert_eq!(
        c.kubectl_ok(&["logs", "talker", "--limit-bytes=8"]),
        "early\nea"
    );
}

/// Runs in `talker` (see `logs_with_times`).
fn cp_both_ways(c: &Cluster) {
    // cp into the pod lands in the pod's own /run, and comes back out the same.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("note.txt");
    std::fs::write(&local, "a note for the pod\n").unwrap();
    c.kubectl_ok(&["cp", local.to_str().unwrap(), "talker:/run/note.txt"]);
    assert_eq!(
        c.kubectl_ok(&["exec", "talker", "--", "cat", "/run/note.txt"]),
        "a note for the pod\n"
    );
    assert!(
        !std::path::Path::new("/run/note.txt").exists(),
        "the pod's /run is its own"
    );
    let back = dir.path().join("back.txt");
    c.kubectl_ok(&["cp", "talker:/run/note.txt", back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "a note for the pod\n"
    );
}

fn debug_with_an_ephemeral_container(c: &Cluster) {
    one_container_pod(c, "web", "Always", "{image: nginx}");
    // The subresource reads as the pod.
    let raw = c.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web/ephemeralcontainers",
    ]);
    let pod: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(pod["kind"], "Pod");

    // The acceptance line, driven without a terminal: busybox's wget in nginx's pod. Attach
    // shows output from when it connects: the pause lets it connect before wget prints (a
    // container that ends first is seen only through `kubectl logs`).
    let out = kubectl_with_input(
        c,
        &[
            "debug",
            "-i",
            "web",
            "--image=busybox",
            "--target=web",
            "--container=dbg",
            "--",
            "sh",
            "-c",
            "sleep 1; wget -qO- localhost",
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("Welcome to nginx!"), "{}", show(&out));
    let pod = json(c, &["get", "pod", "web"]);
    assert_eq!(
        pod["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "web"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pod = json(c, &["get", "pod", "web"]);
        let status = &pod["status"]["ephemeralContainerStatuses"][0];
        if status["state"]["terminated"]["exitCode"] == 0 {
            assert_eq!(status["name"], "dbg");
            break;
        }
        assert!(Instant::now() < deadline, "dbg never ended: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Still Running: an ephemeral container's end is not the pod's.
    assert_eq!(
        json(c, &["get", "pod", "web"])["status"]["phase"],
        "Running"
    );
    assert!(c
        .kubectl_ok(&["logs", "web", "-c", "dbg"])
        .contains("Welcome to nginx!"));

    // Ephemeral containers are only ever added, through the subresource only.
    let mut pod = json(c, &["get", "pod", "web"]);
    pod["spec"]["ephemeralContainers"] = serde_json::json!([]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    std::fs::write(&file, pod.to_string()).unwrap();
    let out = c.kubectl(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/default/pods/web/ephemeralcontainers",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(r#"existing ephemeral containers \"dbg\" may not be removed"#)
            || String::from_utf8_lossy(&out.stderr)
                .contains(r#"existing ephemeral containers "dbg" may not be removed"#),
        "{}",
        show(&out)
    );
}

/// Processes whose argv starts with `prefix` (argv[0] may be a full path).
fn pids_running(prefix: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
            let same = args.len() >= prefix.len()
                && args
                    .iter()
                    .zip(prefix)
                    .all(|(a, b)| *a == b.as_bytes() || a.ends_with(format!("/{b}").as_bytes()));
            same.then_some(pid)
        })
        .collect()
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Issue 11 item 6: the agent is SIGKILLed the moment a container's process exists (while
/// it still starts the pod's other containers, each reading the API); the process is already
/// on record, so `kinet down` stops it.
#[test]
fn a_container_is_on_record_as_soon_as_it_runs() {
    let c = Cluster::up(1);
    let marker = format!("{}.5", 3000 + std::process::id() % 1000);
    let others: String = (1..=4)
        .map(|i| {
            format!(
                "  - name: other{i}\n    image: busybox\n    command: [sleep, \"3600\"]\n    \
                 env:\n    - name: X\n      valueFrom:\n        configMapKeyRef: \
                 {{name: absent{i}, key: k, optional: true}}\n"
            )
        })
        .collect();
    apply(
        &c,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: early}}\nspec:\n  containers:\n  \
             - name: first\n    image: busybox\n    command: [sleep, \"{marker}\"]\n{others}"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let sleeper = loop {
        if let Some(pid) = pids_running(&["sleep", &marker]).first() {
            break *pid;
        }
        assert!(Instant::now() < deadline, "the container never ran");
        std::thread::sleep(Duration::from_millis(1));
    };
    for agent in pids_running(&["kinet", "agent", "--name", &c.name]) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let group = process_group(sleeper).expect("the container still runs");
    let records = find_pod_records(&c.state_dir());
    assert!(
        records
            .iter()
            .any(|r| r.contains(&format!("\"pid\": {group}"))),
        "the container's process group {group} is not on record: {records:?}"
    );
    let out = c.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        pids_running(&["sleep", &marker]).is_empty(),
        "the container outlived kinet down"
    );
    // Nor does any other: a shim the agent started but could not record in time is found by
    // its pod folder.
    let state = c.state_dir().display().to_string();
    let shims: Vec<u32> = pids_running(&["kinet", "shim"])
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(&state))
        })
        .collect();
    assert!(shims.is_empty(), "shims outlived kinet down: {shims:?}");
}

fn find_pod_records(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(find_pod_records(&path));
        } else if path.file_name().is_some_and(|n| n == "pod.json") {
            found.extend(std::fs::read_to_string(&path));
        }
    }
    found
}
