//! Issue 12: containers are isolated by the runtime, checked with real kubectl. One one-node
//! cluster runs every case: a pod's root is its image's (a kinet-made stand-in), writes stay
//! in the container's layer and go with a restart, a container sees only its own processes
//! (or the pod's with `shareProcessNamespace`), Docker's capabilities, containerd's seccomp
//! profile unless Unconfined, privileged devices and /sys, an OOM kill reported
//! as `OOMKilled`, and nothing left on the host once the cluster is down.

use std::path::Path;

use crate::controllers::until;
use crate::harness::{show, Cluster};
use crate::pods::{apply, json};

const WAIT: u64 = 120;

fn pods(marker: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: iso}}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'trap \"exit 3\" TERM; echo {marker}; while true; do sleep 1; done']
---
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'tail /dev/zero']
    resources: {{limits: {{memory: 32Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: shared}}
spec:
  shareProcessNamespace: true
  containers:
  - {{name: sleeper, image: busybox, command: [sleep, '3600']}}
  - {{name: web, image: nginx}}
---
apiVersion: v1
kind: Pod
metadata: {{name: nonroot}}
spec:
  securityContext: {{runAsUser: 1000, runAsGroup: 1000}}
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    workingDir: /tmp
    securityContext: {{capabilities: {{drop: [ALL]}}}}
    livenessProbe: {{exec: {{command: [sh, -c, 'test $(id -u) = 1000']}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: unconfined}}
spec:
  securityContext: {{seccompProfile: {{type: Unconfined}}}}
  containers:
  - {{name: c, image: busybox, command: [sleep, '3600']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: privileged}}
spec:
  containers:
  - {{name: c, image: busybox, command: [sleep, '3600'], securityContext: {{privileged: true}}}}
"
    )
}

fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend(cmd);
    c.kubectl_ok(&args)
}

fn running(c: &Cluster, pod: &str, restarts: i64) -> Result<(), String> {
    let p = json(c, &["get", "pod", pod]);
    let s = &p["status"]["containerStatuses"][0];
    if s["state"]["running"].is_object() && s["restartCount"] == restarts {
        Ok(())
    } else {
        Err(p["status"].to_string())
    }
}

#[test]
fn containers_are_isolated_by_the_runtime() {
    let c = Cluster::up(1);
    let marker = format!("kinet-e2e-{}", c.name);
    apply(&c, &pods(&marker));
    for pod in ["iso", "shared", "nonroot", "unconfined", "privileged"] {
        until(&c, &format!("{pod} running"), WAIT, || running(&c, pod, 0));
    }

    // The image's root, not the host's: no /work, an empty /home, the stand-in's users.
    let root = exec(&c, "iso", &["ls", "/"]);
    assert!(
        root.lines().any(|l| l == "usr") && !root.lines().any(|l| l == "work"),
        "{root}"
    );
    assert_eq!(exec(&c, "iso", &["ls", "-A", "/home"]), "");
    assert!(exec(&c, "iso", &["cat", "/etc/passwd"]).starts_with("root:x:0:0:"));
    assert_eq!(exec(&c, "iso", &["hostname"]).trim(), "iso");

    // Its own processes: the entrypoint is PID 1.
    let cmdline = exec(&c, "iso", &["cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("sh\0-c\0trap"), "{cmdline:?}");
    let pids = exec(&c, "iso", &["ps", "-e", "-o", "pid="]);
    assert!(pids.lines().count() <= 4, "{pids}");
    let caps = exec(&c, "iso", &["grep", "CapBnd", "/proc/1/status"]);
    assert!(
        caps.trim().ends_with("00000000a80425fb"),
        "Docker's default set: {caps}"
    );

    // Writes stay in the container's layer, and a restart starts from a fresh one.
    let file = format!("/{marker}");
    exec(&c, "iso", &["touch", &file]);
    exec(&c, "iso", &["ls", &file]);
    assert!(!Path::new(&file).exists(), "{file} appeared on the host");
    exec(&c, "iso", &["kill", "1"]);
    until(&c, "iso restarted", WAIT, || running(&c, "iso", 1));
    let out = c.kubectl(&["exec", "iso", "--", "ls", &file]);
    assert!(
        !out.status.success(),
        "{file} survived the restart\n{}",
        show(&out)
    );

    // exec (and exec probes: the liveness probe checks the user) runs as the container's
    // processes do: its user, working directory and capabilities.
    let who = exec(
        &c,
        "nonroot",
        &["sh", "-c", "id -u; pwd; grep CapEff /proc/self/status"],
    );
    assert_eq!(
        who.lines().take(2).collect::<Vec<_>>(),
        ["1000", "/tmp"],
        "{who}"
    );
    assert!(who.trim().ends_with("0000000000000000"), "{who}");

    // seccomp: RuntimeDefault (the default) refuses a new user namespace, which a container
    // without CAP_SYS_ADMIN may otherwise make; Unconfined allows it.
    let unshare = |pod: &str| c.kubectl(&["exec", pod, "--", "unshare", "-U", "true"]);
    let confined = unshare("iso");
    assert!(
        !confined.status.success()
            && String::from_utf8_lossy(&confined.stderr).contains("Operation not permitted"),
        "{}",
        show(&confined)
    );
    let free = unshare("unconfined");
    assert!(free.status.success(), "{}", show(&free));
    let mode = exec(&c, "iso", &["grep", "Seccomp:", "/proc/1/status"]);
    assert!(mode.trim().ends_with('2'), "filter mode: {mode}");

    // privileged: the host's devices and a writable /sys, as runc gives them; not otherwise.
    let device = host_device();
    exec(&c, "privileged", &["test", "-c", &device]);
    assert!(!c
        .kubectl(&["exec", "iso", "--", "test", "-e", &device])
        .status
        .success());
    let sys = |pod: &str| exec(&c, pod, &["grep", " /sys sysfs ", "/proc/mounts"]);
    assert!(sys("privileged").contains(" rw,"), "{}", sys("privileged"));
    assert!(sys("iso").contains(" ro,"), "{}", sys("iso"));

    // shareProcessNamespace: the pause process is PID 1, the sibling is visible.
    let ps = c.kubectl_ok(&[
        "exec", "shared", "-c", "sleeper", "--", "ps", "-e", "-o", "args=",
    ]);
    let first = ps.lines().next().unwrap_or("");
    assert!(first.ends_with("pause --hostname shared"), "{ps}");
    assert!(ps.contains("/kinet image-run nginx"), "{ps}");

    // Over its memory limit, the container is OOM-killed.
    let reason = until(&c, "hog OOM-killed", WAIT, || {
        let p = json(&c, &["get", "pod", "hog"]);
        let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        t["reason"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| p["status"].to_string())
    });
    assert_eq!(reason, "OOMKilled");
    running(&c, "nonroot", 0).expect("the liveness probe passed all along");

    // Nothing stays on the host: no mount of the cluster's, no cgroup.
    let home = c.home.display().to_string();
    let out = c.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&home), "mounts left:\n{mounts}");
    assert_eq!(cgroups_left(&c.name), Vec::<String>::new());
}

/// A character device of the host's beyond the minimal /dev every container gets.
fn host_device() -> String {
    use std::os::unix::fs::FileTypeExt;
    let minimal = [
        "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx",
    ];
    std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_char_device()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !minimal.contains(&n.as_str()))
        .map(|n| format!("/dev/{n}"))
        .expect("the host has a character device beyond the minimal set")
}

/// The cgroup directories of cluster `name` that exist (v1 controllers or v2).
pub(crate) fn cgroups_left(name: &str) -> Vec<String> {
    ["memory/", "cpu/", ""]
        .map(|controller| format!("/sys/fs/cgroup/{controller}kinet/{name}"))
        .into_iter()
        .filter(|dir| Path::new(dir).exists())
        .collect()
}
