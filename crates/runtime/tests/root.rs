//! Root tests: real containers on a stand-in root, in a sandbox made with `unshare`. The
//! binary plays the shim itself (`shim SPEC`: join the sandbox, fork the container's first
//! process, exit as it did); without arguments it runs the cases.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use kinet_runtime::{caps, init, standin, BindMount, ContainerSpec, PidNamespace, Process};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        let spec = read(&args[2]);
        let own = init::join_sandbox(&spec).expect("joining the sandbox");
        let mut child = init::FirstProcess::new(spec)
            .spawn()
            .expect("starting the container");
        own.restore().expect("restoring the PID namespace");
        let status = child.wait().unwrap();
        std::process::exit(status.code().unwrap_or(128));
    }
    if !kinet_testkit::root("the container runtime's root tests") {
        return;
    }
    let cases: [(&str, Case); 6] = [
        (
            "the container sees its image and its own processes only",
            isolation,
        ),
        (
            "writes go to the instance's layer",
            writes_stay_in_the_layer,
        ),
        ("capabilities and user are dropped as planned", credentials),
        (
            "RuntimeDefault refuses user namespaces, Unconfined allows them",
            seccomp,
        ),
        (
            "privileged containers get the host's devices and a writable /sys",
            privileged,
        ),
        (
            "a container that cannot start says why and exits with 1",
            failed_start,
        ),
    ];
    let sandbox = Sandbox::new();
    for (name, case) in cases {
        case(&sandbox);
        println!("test {name} ... ok");
    }
}

type Case = fn(&Sandbox);

fn read(path: &str) -> ContainerSpec {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A pause stand-in in fresh network, UTS and IPC namespaces, and a stand-in image.
struct Sandbox {
    pause: Child,
    dir: tempfile::TempDir,
    image: kinet_runtime::ImageRoot,
}

impl Sandbox {
    fn new() -> Sandbox {
        let pause = Command::new("unshare")
            .args(["--net", "--uts", "--ipc", "--", "sleep", "600"])
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let image = standin::materialize(&dir.path().join("images"), None).unwrap();
        // Wait for unshare to have become sleep in its namespaces.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        while std::fs::read_link(format!("/proc/{}/ns/net", pause.id())).ok() == Some(own.clone()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Sandbox { pause, dir, image }
    }

    fn spec(&self, name: &str, script: &str) -> ContainerSpec {
        let hosts = self.dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        ContainerSpec {
            sandbox_pid: self.pause.id(),
            pid_namespace: PidNamespace::Own,
            image: self.image.clone(),
            dir: self.dir.path().join("containers").join(name),
            mounts: vec![BindMount {
                source: hosts,
                target: "/etc/hosts".into(),
                read_only: true,
            }],
            process: Process {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec![("PATH".into(), kinet_runtime::config::DEFAULT_PATH.into())],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                groups: Vec::new(),
                capabilities: caps::capabilities(&[], &[], false).unwrap(),
                no_new_privileges: false,
                seccomp: Default::default(),
                terminal: false,
            },
            read_only_root: false,
            privileged: false,
            cgroups: Vec::new(),
        }
    }

    /// Runs the container to its end; its output, whatever its exit.
    fn output(&self, spec: &ContainerSpec) -> Output {
        std::fs::create_dir_all(&spec.dir).unwrap();
        let file: PathBuf = spec.dir.join("spec.json");
        std::fs::write(&file, serde_json::to_vec(spec).unwrap()).unwrap();
        Command::new(std::env::current_exe().unwrap())
            .arg("shim")
            .arg(&file)
            .output()
            .unwrap()
    }

    /// Runs the container to its end, which must be a success; its output.
    fn run(&self, spec: &ContainerSpec) -> Output {
        let out = self.output(spec);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.pause.kill();
        let _ = self.pause.wait();
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Prints a line `leak:<what>` (the script, in /proc/1/cmdline, has no line starting so).
const LEAK: &str = "printf 'leak:%s\\n'";

fn isolation(s: &Sandbox) {
    let host_file = s.dir.path().join("host-only");
    std::fs::write(&host_file, "").unwrap();
    let script = format!(
        "ls /; echo ---; cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'; \
         test -e {} && {LEAK} host; test -e /work && {LEAK} work; \
         cat /etc/hosts; test -s /proc/kcore && {LEAK} kcore; \
         touch /proc/sysrq-trigger 2>/dev/null && {LEAK} sysrq; \
         touch /sys/x 2>/dev/null && {LEAK} sys; ls /dev",
        host_file.display()
    );
    let out = text(&s.run(&s.spec("iso", &script)));
    let (root, rest) = out.split_once("---\n").unwrap();
    let root: Vec<&str> = root.lines().collect();
    assert!(
        root.contains(&"usr") && root.contains(&"etc") && !root.contains(&"work"),
        "{out}"
    );
    assert!(rest.starts_with("sh\0-c\0"), "{out}");
    // sh, ls and grep (and the shell of the pipeline) at most: no host process.
    let procs: usize = rest.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(procs <= 4, "{out}");
    assert!(!out.lines().any(|l| l.starts_with("leak:")), "{out}");
    assert!(out.contains("127.0.0.1 localhost"), "{out}");
    for dev in ["null", "zero", "urandom", "tty", "pts", "shm", "ptmx"] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing\n{out}");
    }
}

fn writes_stay_in_the_layer(s: &Sandbox) {
    let spec = s.spec(
        "writer",
        "echo hi > /root/note && mkdir -p /usr/kinet-test && touch /usr/kinet-test/f",
    );
    s.run(&spec);
    assert!(spec.dir.join("upper/root/note").is_file());
    assert!(spec.dir.join("host/0/upper/kinet-test/f").is_file());
    assert!(
        !Path::new("/usr/kinet-test").exists(),
        "a write reached the host's /usr"
    );
    assert!(
        !s.image.rootfs.join("root/note").exists(),
        "a write reached the image"
    );
    let mut ro = s.spec("ro", "touch /x 2>/dev/null && echo WRITABLE; true");
    ro.read_only_root = true;
    assert!(!text(&s.run(&ro)).contains("WRITABLE"));
}

fn credentials(s: &Sandbox) {
    let mut spec = s.spec(
        "creds",
        "id -u; id -g; grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status",
    );
    spec.process.uid = 1000;
    spec.process.gid = 1000;
    spec.process.capabilities = vec!["NET_BIND_SERVICE".into()];
    let out = text(&s.run(&spec));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    // A non-root process keeps no capability across exec; the bounding set is the plan's.
    assert!(lines[2].ends_with("0000000000000000"), "{out}");
    assert!(lines[4].ends_with("0000000000000400"), "{out}");
    let root = text(&s.run(&s.spec("rootcaps", "grep CapEff /proc/self/status")));
    assert!(root.trim().ends_with("00000000a80425fb"), "{root}");
}

fn seccomp(s: &Sandbox) {
    let script = "unshare -U true 2>&1 && echo ALLOWED; grep Seccomp: /proc/self/status";
    let mut spec = s.spec("confined", script);
    spec.process.seccomp = kinet_runtime::seccomp::Profile::RuntimeDefault;
    let out = text(&s.run(&spec));
    assert!(
        out.contains("Operation not permitted") && !out.contains("ALLOWED"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.ends_with("\t2")),
        "filter mode: {out}"
    );
    let out = text(&s.run(&s.spec("unconfined", script)));
    assert!(out.contains("ALLOWED"), "{out}");
}

fn privileged(s: &Sandbox) {
    let device = kinet_runtime::devices::host()
        .unwrap()
        .into_iter()
        .find(|d| d.path.starts_with("/dev/") && !d.block && d.path != "/dev/null")
        .expect("the host has a character device");
    let script = format!(
        "test -c {} && echo DEVICE; grep ' /sys sysfs ' /proc/mounts",
        device.path
    );
    let out = text(&s.run(&s.spec("plain", &script)));
    assert!(!out.contains("DEVICE") && out.contains(" ro,"), "{out}");
    let mut spec = s.spec("privileged", &script);
    spec.privileged = true;
    spec.process.capabilities = caps::capabilities(&[], &[], true).unwrap();
    let out = text(&s.run(&spec));
    assert!(out.contains("DEVICE") && out.contains(" rw,"), "{out}");
}

fn failed_start(s: &Sandbox) {
    let mut spec = s.spec("missing", "");
    spec.process.argv = vec!["/no/such/program".into()];
    let out = s.output(&spec);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("Error: exec /no/such/program: No such file or directory"),
        "{err}"
    );
}
