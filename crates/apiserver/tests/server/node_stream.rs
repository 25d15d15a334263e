//! Root test: the real kubectl against the in-process API server, which proxies pod logs,
//! exec and port-forward to a node agent (kinet-node-api) whose one pod is a real sandbox
//! process in fresh namespaces (killed by PID on Drop).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kinet_apiserver::{KubeletClient, ServeConfig, TokenUser};
use kinet_node_api::API_SERVER_CLIENT_CN;
use kinet_testkit::pod::{FakePods, Sandbox};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "node-stream-test-token";

struct Cluster {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    async fn start(pods: Arc<FakePods>) -> (Cluster, u16) {
        let dir = tempfile::tempdir().unwrap();
        let pki =
            kinet_pki::Pki::generate("ns", &kinet_pki::default_server_sans("10.96.0.1")).unwrap();
        // The node agent.
        let agent_tls =
            kinet_node_api::server_config(&pki.ca_cert_pem, &["127.0.0.1".into()]).unwrap();
        let agent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_port = agent.local_addr().unwrap().port();
        let agent_task = tokio::spawn(async move {
            let _ = kinet_node_api::serve(agent, agent_tls, pods, std::future::pending()).await;
        });
        // The API server, with the kubelet client certificate.
        let port = free_port();
        let (cert_pem, key_pem) = pki.issue_client(API_SERVER_CLIENT_CN, &[]).unwrap();
        let config = ServeConfig {
            authorization: true,
            cluster: "ns".into(),
            data_dir: dir.path().join("data"),
            etcd: None,
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))],
            ca_cert_pem: pki.ca_cert_pem.clone(),
            server_cert_pem: pki.server_cert_pem.clone(),
            server_key_pem: pki.server_key_pem.clone(),
            service_account_key_file: dir.path().join(kinet_apiserver::tokenrequest::KEY_FILE),
            tokens: vec![TokenUser {
                token: TOKEN.into(),
                user: "kubernetes-admin".into(),
                groups: vec!["system:masters".into()],
            }],
            admission: Default::default(),
            metrics: None,
            health: Default::default(),
        };
        let api_task = tokio::spawn(async move {
            let kubelet = KubeletClient { cert_pem, key_pem };
            if let Err(e) = kinet_apiserver::run_with_kubelet_client(config, Some(kubelet)).await {
                eprintln!("API server: {e:#}");
            }
        });
        let kubeconfig = dir.path().join("kubeconfig");
        let text = kinet_pki::kubeconfig(
            "ns",
            &format!("https://127.0.0.1:{port}"),
            &pki.ca_cert_pem,
            &kinet_pki::Credentials::Token(TOKEN.into()),
        );
        std::fs::write(&kubeconfig, text).unwrap();
        let cluster = Cluster {
            dir,
            kubeconfig,
            tasks: vec![agent_task, api_task],
        };
        for _ in 0..200 {
            if cluster
                .kubectl(&["get", "--raw", "/readyz"])
                .await
                .status
                .success()
            {
                return (cluster, agent_port);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the API server did not answer");
    }

    fn command(&self, websockets: bool) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets.to_string())
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(true, args, None).await
    }

    async fn kubectl_with(&self, websockets: bool, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = self.command(websockets);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(data) = stdin {
            let mut w = child.stdin.take().unwrap();
            w.write_all(data).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap()
    }

    async fn apply(&self, json: serde_json::Value, extra: &[&str]) {
        let text = json.to_string();
        let mut args = vec!["create", "-f", "-"];
        args.extend(extra);
        let out = self.kubectl_with(true, &args, Some(text.as_bytes())).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn patch_status(&self, what: &str, patch: serde_json::Value) {
        let p = patch.to_string();
        let out = self
            .kubectl(&[
                "patch",
                what,
                "--subresource=status",
                "--type=merge",
                "-p",
                &p,
            ])
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_logs_exec_and_port_forward_reach_the_node_agent() {
    let sandbox = Sandbox::start();
    let logs = tempfile::tempdir().unwrap();
    let pods = Arc::new(FakePods::new(&sandbox, logs.path().join("app.log")));
    // As the shim writes it: the CRI format, with each line's time.
    let written = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    std::fs::write(
        &pods.log,
        kinet_node_api::logs::cri::encode(
            written,
            kinet_node_api::logs::Stream::Stdout,
            b"one\ntwo\n",
        ),
    )
    .unwrap();
    let (cluster, agent_port) = Cluster::start(pods.clone()).await;

    cluster
        .apply(
            serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
            &[],
        )
        .await;
    cluster
        .patch_status(
            "node/n1",
            serde_json::json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}}}}),
        )
        .await;
    for (name, node) in [("web", Some("n1")), ("pending", None)] {
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
        if let Some(node) = node {
            pod["spec"]["nodeName"] = node.into();
        }
        cluster.apply(pod, &[]).await;
    }
    cluster
        .patch_status(
            "pod/web",
            serde_json::json!({"status": {"phase": "Running"}}),
        )
        .await;

    // Logs: whole, tail, a container that is not there.
    assert_eq!(
        text(&cluster.kubectl(&["logs", "web"]).await).1,
        "one\ntwo\n"
    );
    assert_eq!(
        text(&cluster.kubectl(&["logs", "web", "--tail=1"]).await).1,
        "two\n"
    );
    let (ok, _, err) = text(&cluster.kubectl(&["logs", "web", "-c", "nope"]).await);
    assert!(
        !ok && err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    assert_eq!(
        text(&cluster.kubectl(&["logs", "web", "--timestamps"]).await).1,
        "2026-01-02T03:04:05Z one\n2026-01-02T03:04:05Z two\n"
    );

    // Exec over websockets and over SPDY: in the pod's namespaces, with its environment.
    for websockets in [true, false] {
        let out = cluster
            .kubectl_with(
                websockets,
                &["exec", "web", "--", "sh", "-c", "hostname; echo $GREETING"],
                None,
            )
            .await;
        let (ok, stdout, stderr) = text(&out);
        assert!(ok, "websockets={websockets}: {stderr}");
        assert_eq!(
            stdout,
            format!("{}\nhello from the pod\n", Sandbox::hostname())
        );
        let out = cluster
            .kubectl_with(
                websockets,
                &["exec", "-i", "web", "--", "tr", "a-z", "A-Z"],
                Some(b"loud\n"),
            )
            .await;
        assert_eq!(text(&out).1, "LOUD\n", "websockets={websockets}");
        let out = cluster
            .kubectl_with(
                websockets,
                &["exec", "web", "--", "sh", "-c", "exit 7"],
                None,
            )
            .await;
        assert_eq!(out.status.code(), Some(7), "websockets={websockets}");
    }
    let (ok, _, err) = text(&cluster.kubectl(&["exec", "pending", "--", "true"]).await);
    assert!(
        !ok && err.contains("pod pending does not have a host assigned"),
        "{err}"
    );

    // With a terminal: kubectl under `script` has one, so it asks for a TTY and sends its size
    // (beside the command's start, as on a real cluster: the command waits for it).
    for websockets in [true, false] {
        let kubectl = format!(
            "stty cols 123 rows 45; kubectl --cache-dir {} exec -it web -- sh -c \
             'for i in $(seq 30); do [ \"$(stty size)\" != \"0 0\" ] && break; sleep 0.1; done; \
             stty size; tty'",
            cluster.dir.path().join("cache").display()
        );
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["-qec", &kubectl, "/dev/null"])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("HOME", cluster.dir.path())
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("kubectl exec -it finished")
            .unwrap();
        let (ok, stdout, stderr) = text(&out);
        assert!(ok, "websockets={websockets}: {stdout} {stderr}");
        assert!(
            stdout.contains("45 123"),
            "websockets={websockets}: {stdout:?}"
        );
        assert!(
            stdout.contains("/dev/pts/"),
            "websockets={websockets}: {stdout:?}"
        );
    }

    // Exec is an upgrade or nothing.
    let out = cluster
        .kubectl(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/web/exec?command=true&stdout=true",
            "-f",
            "/dev/null",
        ])
        .await;
    let (ok, _, err) = text(&out);
    assert!(!ok && err.contains("Upgrade request required"), "{err}");

    // Port-forward to a listener on the pod's loopback.
    let pid = sandbox.pid();
    let listener = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap();
    let pod_port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let echo = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    for websockets in [true, false] {
        let mut pf = cluster.command(websockets);
        pf.args(["port-forward", "pod/web", &format!(":{pod_port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = pf.spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("port-forward starts")
            .unwrap()
            .unwrap_or_default();
        // "Forwarding from 127.0.0.1:LOCAL -> POD"
        let local: u16 = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected port-forward output {line:?}"));
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        conn.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut got))
            .await
            .expect("echo through port-forward")
            .unwrap();
        assert_eq!(&got, b"ping", "websockets={websockets}");
        let _ = child.kill().await;
    }
    echo.abort();

    // Attach: what the container writes from now on.
    let attach = {
        let mut cmd = cluster.command(true);
        cmd.args(["attach", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&pods.log)
        .unwrap();
    std::io::Write::write_all(&mut file, b"three\n").unwrap();

    // A follow ends when the container stops; so does an attach.
    let follow = {
        let mut cmd = cluster.command(true);
        cmd.args(["logs", "-f", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pods.running.store(false, Ordering::SeqCst);
    let out = tokio::time::timeout(Duration::from_secs(10), follow.wait_with_output())
        .await
        .expect("logs -f ends when the container stops")
        .unwrap();
    assert_eq!(text(&out).1, "one\ntwo\nthree\n");
    let out = tokio::time::timeout(Duration::from_secs(10), attach.wait_with_output())
        .await
        .expect("attach ends when the container stops")
        .unwrap();
    assert_eq!(text(&out).1, "three\n", "{}", text(&out).2);

    // An agent that does not answer.
    let closed = free_port();
    cluster
        .apply(
            serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}),
            &[],
        )
        .await;
    cluster
        .patch_status(
            "node/n2",
            serde_json::json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": closed}}}}),
        )
        .await;
    cluster
        .apply(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lost"},
                "spec": {"nodeName": "n2", "containers": [{"name": "app", "image": "busybox"}]}}),
            &[],
        )
        .await;
    let (ok, _, err) = text(&cluster.kubectl(&["exec", "lost", "--", "true"]).await);
    assert!(
        !ok && err.contains("error dialing backend: dial tcp 127.0.0.1:")
            && err.contains(": connect: connection refused"),
        "{err}"
    );
    let (ok, _, err) = text(&cluster.kubectl(&["logs", "lost"]).await);
    assert!(!ok && err.contains("connect"), "{err}");
    drop(cluster);
}
