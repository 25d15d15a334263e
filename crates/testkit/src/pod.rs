//! A pod for node-API tests: a process holding fresh namespaces as a pause process does
//! (killed by PID on drop), and a [`Pods`] view of its one container `default/web/app`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use kinet_node_api::{ContainerInfo, Pods};

/// A process holding new net, uts, ipc and mount namespaces, like a pod's pause process.
/// Its loopback is up and its hostname is `hostname()`.
pub struct Sandbox {
    child: Child,
}

impl Sandbox {
    pub fn start() -> Sandbox {
        let script = format!(
            "ip link set lo up && hostname {} && echo ready && exec sleep 1000",
            Self::hostname()
        );
        let mut child = Command::new("unshare")
            .args(["--net", "--uts", "--ipc", "--mount", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sandbox = Sandbox { child };
        assert_eq!(line, "ready\n", "the sandbox did not start");
        sandbox
    }

    pub fn hostname() -> String {
        format!("kinet-t{}-pod", std::process::id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One pod `default/web` with container `app`, run by the sandbox.
pub struct FakePods {
    pub pid: u32,
    pub running: AtomicBool,
    /// Whether the shim has written the container's PID yet (it may lag the running report).
    pub pid_written: AtomicBool,
    pub log: PathBuf,
    pub previous_log: Option<PathBuf>,
    /// The container's stdin FIFO and terminal-name file, if it has them.
    pub stdin: Option<PathBuf>,
    pub tty: Option<PathBuf>,
}

impl FakePods {
    /// The sandbox's container, running with its PID known, logging to `log`, without
    /// stdin or a terminal.
    pub fn new(sandbox: &Sandbox, log: PathBuf) -> FakePods {
        FakePods {
            pid: sandbox.pid(),
            running: AtomicBool::new(true),
            pid_written: AtomicBool::new(true),
            log,
            previous_log: None,
            stdin: None,
            tty: None,
        }
    }
}

impl Pods for FakePods {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerInfo, String> {
        if (namespace, pod) != ("default", "web") {
            return Err(format!("pod {pod:?} in namespace {namespace:?} not found"));
        }
        if !matches!(container, None | Some("app")) {
            return Err(format!("container {container:?} not found in pod {pod:?}"));
        }
        Ok(ContainerInfo {
            name: "app".into(),
            sandbox_pid: Some(self.pid),
            running: self.running.load(Ordering::SeqCst),
            env: vec![
                ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
                ("GREETING".into(), "hello from the pod".into()),
            ],
            enter: self.pid_written.load(Ordering::SeqCst).then(|| {
                [
                    "nsenter".to_string(),
                    format!("--target={}", self.pid),
                    "--net".into(),
                    "--uts".into(),
                    "--ipc".into(),
                    "--mount".into(),
                    "--wd=/tmp".into(),
                    "--".into(),
                ]
                .to_vec()
            }),
            log: Some(self.log.clone()),
            previous_log: self.previous_log.clone(),
            stdin: self.stdin.clone(),
            tty: self.tty.clone(),
        })
    }
}
