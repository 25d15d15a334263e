//! The pod worker against a real (in-process) API server and a fake kernel, without root:
//! what it asks of the machine for a pod, and the status it posts as the container runs,
//! exits, crash-loops and is deleted.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kinet_agent::pods::kernel::{Kernel, Started};
use kinet_agent::pods::process::Launch;
use kinet_agent::pods::record::Proc;
use kinet_agent::pods::sandbox::SandboxError;
use kinet_agent::pods::{self, ClusterDns, Runtime};
use kinet_runtime::cgroup::Limits;
use kinet_runtime::PidNamespace;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Records what it is asked; a container runs until the test ends it (or it is stopped).
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    launches: Mutex<Vec<Launch>>,
    running: Mutex<HashMap<u32, oneshot::Sender<Option<i32>>>>,
    next_pid: Mutex<u32>,
}

impl Fake {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn pid(&self) -> u32 {
        let mut n = self.next_pid.lock().unwrap();
        *n += 1;
        1000 + *n
    }

    /// Ends the running container `pid` with `code`.
    fn exit(&self, pid: u32, code: i32) {
        let tx = self.running.lock().unwrap().remove(&pid).expect("running");
        let _ = tx.send(Some(code));
    }
}

fn proc(pid: u32) -> Proc {
    Proc { pid, start: 1 }
}

impl Kernel for Fake {
    fn network<'a>(
        &'a self,
        netns: &'a str,
        ip: Ipv4Addr,
    ) -> BoxFuture<'a, Result<(), SandboxError>> {
        self.call(format!("network {netns} {ip}"));
        async { Ok(()) }.boxed()
    }

    fn remove_network<'a>(
        &'a self,
        netns: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), SandboxError>> {
        self.call(format!("remove-network {netns}"));
        async { Ok(()) }.boxed()
    }

    fn start_pause<'a>(
        &'a self,
        netns: Option<&'a str>,
        hostname: &'a str,
        _: &'a Path,
    ) -> BoxFuture<'a, Result<Proc, SandboxError>> {
        match netns {
            Some(_) => self.call(format!("pause {hostname}")),
            None => self.call(format!("pause {hostname} on the node's network")),
        }
        async { Ok(proc(1)) }.boxed()
    }

    fn start(&self, launch: &Launch) -> std::io::Result<Started> {
        let pid = self.pid();
        self.call(format!(
            "start {pid} {}",
            launch.spec.process.argv.join(" ")
        ));
        self.launches.lock().unwrap().push(launch.clone());
        let (tx, rx) = oneshot::channel();
        self.running.lock().unwrap().insert(pid, tx);
        Ok(Started {
            process: proc(pid),
            exit: async move { rx.await.ok().flatten() }.boxed(),
        })
    }

    fn stop(&self, p: Proc, _: Duration) -> BoxFuture<'static, ()> {
        self.call(format!("stop {}", p.pid));
        // As SIGTERM ends a well-behaved container.
        if let Some(tx) = self.running.lock().unwrap().remove(&p.pid) {
            let _ = tx.send(Some(143));
        }
        async {}.boxed()
    }

    fn alive(&self, p: Proc) -> bool {
        p.pid == 1 || self.running.lock().unwrap().contains_key(&p.pid)
    }

    fn wait_adopted(&self, _: Proc) -> BoxFuture<'static, ()> {
        futures::future::pending().boxed()
    }

    fn limit(&self, rel: &Path, limits: Limits) -> std::io::Result<Vec<PathBuf>> {
        self.call(format!("limit {} {:?}", rel.display(), limits.memory));
        Ok(Vec::new())
    }

    fn oom_killed(&self, _: &Path) -> bool {
        false
    }

    fn remove_cgroups(&self, rel: &Path) {
        self.call(format!("remove-cgroups {}", rel.display()));
    }
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> Option<Value>) -> Value {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A node `n1` at 172.18.0.2 whose pods go through `fake`: the API, the pod runtime's task,
/// and the pods API.
struct Node {
    _api: kinet_testkit::TestApi,
    dir: tempfile::TempDir,
    agent: tokio::task::JoinHandle<()>,
    pods: Api<Pod>,
}

impl Node {
    async fn start(fake: Arc<Fake>) -> anyhow::Result<Node> {
        let api = kinet_testkit::TestApi::start().await?;
        let client = api.client()?;
        let dir = tempfile::tempdir()?;
        let cfg = pods::Config {
            node: "n1".into(),
            cluster: "t".into(),
            host_ip: Ipv4Addr::new(172, 18, 0, 2),
            node_dir: dir.path().join("node"),
            exe: "/usr/bin/true".into(),
            images_dir: dir.path().join("images"),
            dns: ClusterDns::default(),
            ca_pem: String::new(),
            registries: Default::default(),
        };
        let rt = Runtime::new(client.clone(), cfg, fake, "10.244.0.0/24".parse()?);
        let agent = tokio::spawn(async move {
            pods::run(rt).await;
        });
        Ok(Node {
            _api: api,
            dir,
            agent,
            pods: Api::namespaced(client, "default"),
        })
    }
}

#[tokio::test]
async fn a_pod_runs_crash_loops_and_goes_through_the_kernel_seam() -> anyhow::Result<()> {
    let fake = Arc::new(Fake::default());
    let node = Node::start(fake.clone()).await?;
    let (pods, dir) = (&node.pods, &node.dir);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crash"},
        "spec": {
            "nodeName": "n1",
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "c", "image": "busybox", "command": ["sh", "-c", "exit 1"],
                "resources": {"limits": {"memory": "32Mi"}}
            }]
        }
    }))?;
    let uid = pods
        .create(&PostParams::default(), &pod)
        .await?
        .metadata
        .uid
        .unwrap();
    let status = |p: &Pod| serde_json::to_value(&p.status).unwrap()["containerStatuses"][0].clone();

    let running = until("the container running", async || {
        let s = status(&pods.get("crash").await.ok()?);
        s["state"]["running"].is_object().then_some(s)
    })
    .await;
    assert_eq!(running["containerID"], "kinet://1001");
    let launch = fake.launches.lock().unwrap()[0].clone();
    assert_eq!(launch.spec.process.argv, ["sh", "-c", "exit 1"]);
    assert_eq!(launch.spec.pid_namespace, PidNamespace::Own);
    assert_eq!(launch.spec.sandbox_pid, 1);
    assert!(launch
        .spec
        .image
        .rootfs
        .starts_with(dir.path().join("images")));
    assert!(launch.spec.mounts.iter().any(|m| m.target == "/etc/hosts"));

    // Two quick exits: restarted at once, then backed off.
    fake.exit(1001, 1);
    until("a second instance", async || {
        (fake.launches.lock().unwrap().len() == 2).then_some(Value::Null)
    })
    .await;
    fake.exit(1002, 1);
    let waiting = until("CrashLoopBackOff", async || {
        let s = status(&pods.get("crash").await.ok()?);
        (s["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(s)
    })
    .await;
    assert_eq!(waiting["restartCount"], 1);
    assert_eq!(waiting["lastState"]["terminated"]["exitCode"], 1);

    pods.delete("crash", &DeleteParams::default()).await?;
    until("the pod deleted", async || {
        pods.get_opt("crash")
            .await
            .ok()?
            .is_none()
            .then_some(Value::Null)
    })
    .await;
    let calls = fake.calls();
    let netns = kinet_agent::pods::sandbox::netns_name("t", &uid);
    let want = [
        format!("network {netns} 10.244.0.2"),
        "pause crash".to_string(),
        format!("limit kinet/t/{uid}/c Some(33554432)"),
        "start 1001 sh -c exit 1".to_string(),
        format!("remove-cgroups kinet/t/{uid}/c"),
        "start 1002 sh -c exit 1".to_string(),
        "stop 1".to_string(),
        format!("remove-network {netns}"),
        format!("remove-cgroups kinet/t/{uid}"),
    ];
    for w in &want {
        assert!(calls.contains(w), "{w} not in {calls:#?}");
    }
    let at = |w: &str| calls.iter().position(|c| c == w).unwrap();
    assert!(
        at("stop 1") < at(&format!("remove-network {netns}")),
        "{calls:#?}"
    );
    node.agent.abort();
    Ok(())
}

#[tokio::test]
async fn a_host_network_pod_has_the_nodes_namespace_address_and_name() -> anyhow::Result<()> {
    let fake = Arc::new(Fake::default());
    let node = Node::start(fake.clone()).await?;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "daemon"},
        "spec": {
            "nodeName": "n1",
            "hostNetwork": true,
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]
        }
    }))?;
    node.pods.create(&PostParams::default(), &pod).await?;
    let running = until("the pod running with the node's address", async || {
        let p = serde_json::to_value(node.pods.get("daemon").await.ok()?).unwrap();
        (p["status"]["podIP"] == "172.18.0.2").then_some(p)
    })
    .await;
    assert_eq!(running["status"]["hostIP"], "172.18.0.2");
    node.pods.delete("daemon", &DeleteParams::default()).await?;
    until("the pod deleted", async || {
        let gone = node.pods.get_opt("daemon").await.ok()?.is_none();
        gone.then_some(Value::Null)
    })
    .await;
    let calls = fake.calls();
    assert!(
        calls.contains(&"pause n1 on the node's network".to_string()),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("network ") && !c.starts_with("pause")),
        "a namespace of its own was made or removed: {calls:#?}"
    );
    node.agent.abort();
    Ok(())
}
