//! Root tests: the agent's API against a real sandbox process in fresh namespaces, through a
//! TLS client presenting the API server's certificate.

mod support;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use kinet_node_api::logs::{cri, Stream};
use support::{channel, running, Agent, FakePods, Sandbox, WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pods(sandbox: &Sandbox, dir: &tempfile::TempDir) -> Arc<FakePods> {
    Arc::new(FakePods::new(sandbox, dir.path().join("app.log")))
}

#[tokio::test]
async fn logs_tail_limit_and_kubelet_errors() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    // Written as the shim writes: "one" an hour ago, the rest now.
    let now = std::time::SystemTime::now();
    let hour_ago = now - Duration::from_secs(3600);
    let log = [
        cri::encode(hour_ago, Stream::Stdout, b"one\n"),
        cri::encode(now, Stream::Stderr, b"two\n"),
        cri::encode(now, Stream::Stdout, b"three\n"),
    ]
    .concat();
    std::fs::write(&pods.log, log).unwrap();
    let agent = Agent::start(pods.clone()).await;

    let base = "/containerLogs/default/web/app";
    assert_eq!(agent.get(base).await, (200, "one\ntwo\nthree\n".into()));
    assert_eq!(
        agent.get(&format!("{base}?tailLines=2")).await,
        (200, "two\nthree\n".into())
    );
    assert_eq!(
        agent.get(&format!("{base}?tailLines=2&limitBytes=5")).await,
        (200, "two\nt".into())
    );
    assert_eq!(
        agent.get(&format!("{base}?sinceSeconds=60")).await,
        (200, "two\nthree\n".into())
    );
    let (status, stamped) = agent
        .get(&format!("{base}?timestamps=true&tailLines=2"))
        .await;
    assert_eq!(status, 200);
    let stamp = cri::rfc3339_nano(now.into());
    assert_eq!(stamped, format!("{stamp} two\n{stamp} three\n"));
    let (status, msg) = agent.get(&format!("{base}?previous=true")).await;
    assert_eq!(status, 400);
    assert_eq!(
        msg,
        r#"previous terminated container "app" in pod "web" not found"#
    );
    let (status, msg) = agent.get("/containerLogs/default/nope/app").await;
    assert_eq!(status, 404);
    assert!(msg.contains("nope"), "{msg}");
    assert_eq!(agent.get("/containerLogs/default/web").await.0, 404);
}

#[tokio::test]
async fn logs_follow_until_the_container_stops() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    std::fs::write(&pods.log, "before\n").unwrap();
    let agent = Agent::start(pods.clone()).await;

    let req = http::Request::get("/containerLogs/default/web/app?follow=true&tailLines=1")
        .header("host", "node")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = agent.request(req).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"before\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&pods.log)
        .unwrap();
    file.write_all(b"after\n").unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("appended bytes arrive")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&next[..], b"after\n");
    // The last words of a stopping container still come, then the stream ends.
    file.write_all(b"bye\n").unwrap();
    running(&pods, false);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the follow ends when the container stops")
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"bye\n");
}

#[tokio::test]
async fn exec_runs_in_the_pods_namespaces_with_its_environment() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(pods(&sandbox, &dir)).await;
    let script = "hostname; echo $GREETING; pwd; ip -o link | wc -l; echo oops >&2; exit 3";
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("command", "sh"), ("command", "-c"), ("command", script)])
        .append_pair("stdout", "true")
        .append_pair("stderr", "true")
        .finish();
    let mut ws = WsClient::open(&agent, &format!("/exec/default/web/app?{query}")).await;
    let messages = tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("exec ends");
    // Only `lo` in the pod's network namespace.
    assert_eq!(
        channel(&messages, 1),
        format!("{}\nhello from the pod\n/tmp\n1\n", Sandbox::hostname())
    );
    assert_eq!(channel(&messages, 2), "oops\n");
    let status: serde_json::Value = serde_json::from_str(&channel(&messages, 3)).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
}

#[tokio::test]
async fn exec_with_stdin() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(pods(&sandbox, &dir)).await;
    let mut ws = WsClient::open(
        &agent,
        "/exec/default/web/app?command=tr&command=a-z&command=A-Z&stdin=true&stdout=true",
    )
    .await;
    ws.send(0, b"shout\n").await;
    ws.send(255, &[0]).await;
    let messages = tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("exec ends");
    assert_eq!(channel(&messages, 1), "SHOUT\n");
    let status: serde_json::Value = serde_json::from_str(&channel(&messages, 3)).unwrap();
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn exec_waits_for_the_pid_of_a_container_just_reported_running() {
    // `kubectl run -it` attaches the moment the pod is Running; the shim writes the PID a
    // moment later.
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    pods.pid_written.store(false, Ordering::SeqCst);
    let agent = Agent::start(pods.clone()).await;
    let later = pods.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later.pid_written.store(true, Ordering::SeqCst);
    });
    let mut ws = WsClient::open(&agent, "/exec/default/web/app?command=hostname&stdout=true").await;
    let messages = tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("exec ends");
    assert_eq!(channel(&messages, 1), format!("{}\n", Sandbox::hostname()));
}

#[tokio::test]
async fn exec_with_a_terminal_gets_a_controlling_tty_and_resizes() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(pods(&sandbox, &dir)).await;
    // /dev/tty opens only with a controlling terminal; `read` waits for the resize to land.
    let script = "read go; stty size; echo term=$TERM; echo ctty > /dev/tty; exit 0";
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("command", "sh"), ("command", "-c"), ("command", script)])
        .append_pair("stdin", "true")
        .append_pair("stdout", "true")
        .append_pair("tty", "true")
        .finish();
    let mut ws = WsClient::open(&agent, &format!("/exec/default/web/app?{query}")).await;
    ws.send(4, br#"{"Width":101,"Height":37}"#).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.send(0, b"go\r").await;
    let messages = tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("exec ends");
    let out = channel(&messages, 1);
    assert!(out.contains("37 101\r\n"), "{out:?}");
    assert!(out.contains("term=xterm\r\n"), "{out:?}");
    assert!(out.contains("ctty\r\n"), "{out:?}");
    let status: serde_json::Value = serde_json::from_str(&channel(&messages, 3)).unwrap();
    assert_eq!(status["status"], "Success", "{status}");
}

#[tokio::test]
async fn exec_and_attach_refusals() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    let agent = Agent::start(pods.clone()).await;
    let upgrade = |path: &str| {
        http::Request::post(path)
            .header("host", "node")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "v5.channel.k8s.io")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let text = |resp: http::Response<hyper::body::Incoming>| async move {
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let resp = agent
        .request(upgrade("/attach/default/web/app?stdin=true&stdout=true"))
        .await;
    let (status, msg) = text(resp).await;
    assert_eq!(status, 400);
    assert!(msg.contains("stdin"), "{msg}");
    let resp = agent
        .request(upgrade("/exec/default/web/app?stdout=true"))
        .await;
    assert_eq!(text(resp).await.0, 400);
    running(&pods, false);
    let resp = agent
        .request(upgrade("/exec/default/web/app?command=ls&stdout=true"))
        .await;
    assert_eq!(
        text(resp).await,
        (500, r#"container not found ("app")"#.into())
    );
}

#[tokio::test]
async fn attach_streams_what_the_container_writes_from_now_on() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    std::fs::write(&pods.log, "old\n").unwrap();
    let agent = Agent::start(pods.clone()).await;
    let mut ws = WsClient::open(&agent, "/attach/default/web/app?stdout=true&stderr=true").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&pods.log)
        .unwrap();
    file.write_all(b"new\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running(&pods, false);
    let messages = tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("attach ends when the container stops");
    assert_eq!(channel(&messages, 1), "new\n");
}

#[tokio::test]
async fn port_forward_connects_inside_the_pod_only() {
    let sandbox = Sandbox::start();
    // An echo server on the pod's loopback, and a decoy on the host's, on one port.
    let pid = sandbox.pid();
    let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let listener = kinet_netns::run_in(&netns, || std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
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
    let mut tcp = kinet_node_api::portforward::connect_in_netns(pid, port)
        .await
        .unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    tcp.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");

    // Only on the pod's IPv6 loopback: found too, as runtimes dial "localhost".
    let v6 = kinet_netns::run_in(&netns, || std::net::TcpListener::bind("[::1]:0")).unwrap();
    if let Ok(v6) = v6 {
        let v6_port = v6.local_addr().unwrap().port();
        kinet_node_api::portforward::connect_in_netns(pid, v6_port)
            .await
            .expect("IPv6 loopback in the pod");
    }

    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();
    let err = kinet_node_api::portforward::connect_in_netns(pid, host_port)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    echo.abort();
}

#[tokio::test]
async fn only_the_api_server_may_call() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let pods = pods(&sandbox, &dir);
    std::fs::write(&pods.log, "secret\n").unwrap();
    let agent = Agent::start(pods.clone()).await;
    let req = http::Request::get("/containerLogs/default/web/app")
        .header("host", "node")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = agent.request_as("kubernetes-admin", req).await;
    assert_eq!(resp.status(), 403);

    // No client certificate: no TLS session at all.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await;
    assert!(handshake.is_err());
}

#[tokio::test]
async fn a_terminal_session_whose_client_goes_away_is_hung_up() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(pods(&sandbox, &dir)).await;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo pid=$$; exec sleep 1000"),
        ])
        .append_pair("stdin", "true")
        .append_pair("stdout", "true")
        .append_pair("tty", "true")
        .finish();
    let mut ws = WsClient::open(&agent, &format!("/exec/default/web/app?{query}")).await;
    let pid = tokio::time::timeout(Duration::from_secs(10), ws.read_pid())
        .await
        .expect("the command starts");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(ws);
    // The hang-up ends it at once; the kill 5 s later is the fallback. Allow for both on a
    // loaded machine (CI saw the hang-up take over 3 s once).
    for _ in 0..80 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie the agent has yet to reap.
        if stat.is_empty() || stat.contains(") Z ") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the command outlived its client");
}

#[tokio::test]
async fn attach_feeds_the_stdin_fifo_and_resizes_the_terminal() {
    let sandbox = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let tty_name = dir.path().join("tty");
    std::fs::write(
        &tty_name,
        nix::unistd::ttyname(&pty.slave)
            .unwrap()
            .as_os_str()
            .as_encoded_bytes(),
    )
    .unwrap();
    std::fs::write(dir.path().join("app.log"), "").unwrap();
    let pods = Arc::new(FakePods {
        stdin: Some(fifo.clone()),
        tty: Some(tty_name),
        ..FakePods::new(&sandbox, dir.path().join("app.log"))
    });
    // What the shim does: read the FIFO (until its writer, the attach, is gone).
    let reader = std::thread::spawn(move || std::fs::read(&fifo).unwrap());
    let agent = Agent::start(pods.clone()).await;
    let mut ws = WsClient::open(
        &agent,
        "/attach/default/web/app?stdin=true&stdout=true&tty=true",
    )
    .await;
    ws.send(0, b"hello\n").await;
    ws.send(4, br#"{"Width":91,"Height":37}"#).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let size = rustix::termios::tcgetwinsize(&pty.master).unwrap();
        if (size.ws_col, size.ws_row) == (91, 37) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never resized");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The container stops: the attach ends and lets go of its stdin.
    running(&pods, false);
    tokio::time::timeout(Duration::from_secs(10), ws.read_all())
        .await
        .expect("attach ends when the container stops");
    assert_eq!(reader.join().unwrap(), b"hello\n");
}
