//! The real kubectl v1.32 against a loopback HTTPS server whose exec and portforward
//! subresources are served by this crate, over websockets and over SPDY.

mod support;

use std::process::{Output, Stdio};
use std::time::Duration;

use kinet_remotecommand::{PortForwardProtocol, Protocol, SpdyVersion};
use support::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn run(mut cmd: tokio::process::Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(data).await.unwrap();
        drop(w);
    }
    tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("kubectl finished in time")
        .unwrap()
}

fn expected_exec(websockets: bool) -> Protocol {
    if websockets {
        Protocol::WebSocketV5
    } else {
        Protocol::Spdy {
            version: SpdyVersion::V5,
        }
    }
}

async fn exec_echo(websockets: bool) {
    let server = TestServer::start().await;
    let mut cmd = server.kubectl(websockets);
    cmd.args(["exec", "p", "--", "echo", "hi"]);
    let out = run(cmd, None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "stderr: {stderr}"
    );
    assert_eq!(
        server.seen.lock().unwrap().exec,
        [expected_exec(websockets)]
    );
}

async fn exec_stdin(websockets: bool) {
    let server = TestServer::start().await;
    let mut cmd = server.kubectl(websockets);
    cmd.args(["exec", "-i", "p", "--", "cat"]);
    let input: Vec<u8> = (0..200_000u32)
        .map(|i| b'a' + (i % 26) as u8)
        .chain(*b"\nhi\n")
        .collect();
    let out = run(cmd, Some(&input)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl failed: {stderr}");
    assert_eq!(out.stdout.len(), input.len(), "stderr: {stderr}");
    assert!(out.stdout == input);
}

async fn exec_exit_code(websockets: bool) {
    let server = TestServer::start().await;
    let mut cmd = server.kubectl(websockets);
    cmd.args([
        "exec",
        "p",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let out = run(cmd, None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(stderr.starts_with("err\n"), "stderr: {stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "stderr: {stderr}"
    );
}

async fn attach_stdin(websockets: bool) {
    let server = TestServer::start().await;
    let mut cmd = server.kubectl(websockets);
    cmd.args(["attach", "-i", "p", "-c", "c"]);
    let out = run(cmd, Some(b"attached\n")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "attached\n",
        "stderr: {stderr}"
    );
    assert_eq!(
        server.seen.lock().unwrap().exec,
        [expected_exec(websockets)]
    );
}

/// `kubectl exec -it` under `script`, which gives it a terminal of 80x24: the session is a TTY
/// one (no stderr stream, a resize stream) and the first size arrives.
async fn exec_tty(websockets: bool) {
    let server = TestServer::start().await;
    let kubectl = server.kubectl(websockets);
    let mut cmd = tokio::process::Command::new("script");
    for (k, v) in kubectl.as_std().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let cache = server.dir.path().join("cache");
    cmd.args(["-qec"])
        .arg(format!(
            "stty rows 24 cols 80; kubectl --cache-dir {} exec -it p -- sh -c 'sleep 0.3; echo tty'",
            cache.display()
        ))
        .arg("/dev/null")
        .kill_on_drop(true);
    let out = run(cmd, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "script/kubectl failed: {stdout}");
    assert!(stdout.contains("tty"), "stdout: {stdout}");
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.exec, [expected_exec(websockets)]);
    assert_eq!(seen.resizes.first(), Some(&(80, 24)), "stdout: {stdout}");
}

/// Starts `kubectl port-forward pod/p :<port>` and returns it with the local port it chose.
async fn start_port_forward(
    server: &TestServer,
    websockets: bool,
    pod_port: u16,
) -> (tokio::process::Child, u16) {
    let mut cmd = server.kubectl(websockets);
    cmd.args(["port-forward", "pod/p", &format!(":{pod_port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = "Forwarding from 127.0.0.1:";
    let local = tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // "Forwarding from 127.0.0.1:41234 -> 80"
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.split(' ').next().unwrap().parse::<u16>().unwrap();
            }
        }
        panic!("kubectl port-forward ended before forwarding");
    })
    .await
    .expect("kubectl started forwarding");
    // Keep draining stdout so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, local)
}

async fn port_forward_error(websockets: bool) {
    let server = TestServer::start().await;
    let (mut child, local) = start_port_forward(&server, websockets, 81).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, conn.read_to_end(&mut got)).await;
    assert!(got.is_empty());
    // kubectl logs the message from the error stream; give it a moment, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing listens on port 81"),
        "stderr: {stderr}"
    );
    assert_eq!(server.seen.lock().unwrap().forwarded_ports, [81]);
}

async fn port_forward(websockets: bool) {
    let server = TestServer::start().await;
    let (mut child, local) = start_port_forward(&server, websockets, 80).await;

    // Several connections in turn, one of them large, each echoed back whole.
    for (i, size) in [5usize, 300_000, 11].into_iter().enumerate() {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        let payload: Vec<u8> = (0..size).map(|j| (i * 7 + j) as u8).collect();
        let (mut r, mut w) = conn.split();
        let (_, echoed) = tokio::time::timeout(TIMEOUT, async {
            tokio::join!(
                async {
                    w.write_all(&payload).await.unwrap();
                    w.shutdown().await.unwrap();
                },
                async {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    got
                }
            )
        })
        .await
        .expect("echo in time");
        assert_eq!(echoed.len(), payload.len(), "connection {i}");
        assert!(echoed == payload, "connection {i}");
    }
    child.kill().await.unwrap();
    let seen = server.seen.lock().unwrap();
    let expected = if websockets {
        PortForwardProtocol::WebSocketTunnel
    } else {
        PortForwardProtocol::Spdy
    };
    assert_eq!(seen.portforward, [expected]);
    assert_eq!(seen.forwarded_ports, [80, 80, 80]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_echo_websocket() {
    exec_echo(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_echo_spdy() {
    exec_echo(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_stdin_websocket() {
    exec_stdin(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_stdin_spdy() {
    exec_stdin(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_exit_code_websocket() {
    exec_exit_code(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_exit_code_spdy() {
    exec_exit_code(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_websocket_tunnel() {
    port_forward(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_spdy() {
    port_forward(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_stdin_websocket() {
    attach_stdin(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_stdin_spdy() {
    attach_stdin(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_error_websocket_tunnel() {
    port_forward_error(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_error_spdy() {
    port_forward_error(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_tty_websocket() {
    exec_tty(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_tty_spdy() {
    exec_tty(false).await;
}
