//! A tiny HTTPS API server for kubectl: just enough discovery and one Running pod `p` with
//! container `c`, whose exec and portforward subresources are served by kinet-remotecommand.
//! Exec runs the real command on this host; port-forward goes to a loopback echo server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kinet_remotecommand::{
    exec_session, negotiate_exec, negotiate_portforward, portforward_session, ExecSession,
    PortForwardProtocol, Protocol, StreamOptions,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TOKEN: &str = "test-token";

/// What the server saw, for assertions.
#[derive(Default)]
pub struct Seen {
    pub exec: Vec<Protocol>,
    pub portforward: Vec<PortForwardProtocol>,
    pub forwarded_ports: Vec<u16>,
    pub resizes: Vec<(u16, u16)>,
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub seen: Arc<Mutex<Seen>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

struct State {
    echo: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = kinet_pki::Pki::generate("t", &["127.0.0.1".to_string()]).unwrap();
        let certs = rustls_pemfile::certs(&mut pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pki.server_key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        // Upgrades need HTTP/1.1; kubectl uses it for everything when h2 isn't offered.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        let echo_task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::new(State {
            echo: echo_addr,
            seen: seen.clone(),
        });
        let api_task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });

        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let text = kinet_pki::kubeconfig(
            "t",
            &format!("https://{addr}"),
            &pki.ca_cert_pem,
            &kinet_pki::Credentials::Token(TOKEN.into()),
        );
        std::fs::write(&kubeconfig, text).unwrap();
        TestServer {
            dir,
            kubeconfig,
            seen,
            tasks: vec![echo_task, api_task],
        }
    }

    /// `kubectl` with this server's kubeconfig, a private cache and home, and the given
    /// transport: websockets, or SPDY only.
    pub fn kubectl(&self, websockets: bool) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env(
                "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
                if websockets { "true" } else { "false" },
            )
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if websockets { "true" } else { "false" },
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status_reply(code: StatusCode, reason: &str, message: &str) -> Reply {
    json_reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

async fn handle(mut req: Request<Incoming>, state: Arc<State>) -> Result<Reply, Infallible> {
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return Ok(status_reply(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
        ));
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    Ok(match path.as_str() {
        "/version" => json_reply(
            StatusCode::OK,
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}),
        ),
        "/api" => json_reply(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => json_reply(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        "/api/v1" => json_reply(StatusCode::OK, resources()),
        "/api/v1/namespaces/default/pods/p" => json_reply(StatusCode::OK, pod()),
        // Attach joins the container's main process; here that is a fresh `cat`.
        "/api/v1/namespaces/default/pods/p/exec" | "/api/v1/namespaces/default/pods/p/attach" => {
            match negotiate_exec(req.headers()) {
                Ok((protocol, reply)) => {
                    state.seen.lock().unwrap().exec.push(protocol);
                    let upgrade = hyper::upgrade::on(&mut req);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let opts = StreamOptions::from_query(&query);
                        let command = if path.ends_with("/attach") {
                            vec!["cat".to_string()]
                        } else {
                            StreamOptions::command_from_query(&query)
                        };
                        match exec_session(TokioIo::new(upgraded), protocol, opts).await {
                            Ok(mut session) => {
                                if let Some(mut sizes) = session.resizes() {
                                    let seen = state.seen.clone();
                                    tokio::spawn(async move {
                                        while let Some(s) = sizes.recv().await {
                                            seen.lock().unwrap().resizes.push((s.width, s.height));
                                        }
                                    });
                                }
                                run(session, command).await
                            }
                            Err(e) => eprintln!("exec session: {e}"),
                        }
                    });
                    reply.body(Full::new(Bytes::new())).unwrap()
                }
                Err(e) => status_reply(e.http_status(), "BadRequest", &e.to_string()),
            }
        }
        "/api/v1/namespaces/default/pods/p/portforward" => {
            match negotiate_portforward(req.headers()) {
                Ok((protocol, reply)) => {
                    state.seen.lock().unwrap().portforward.push(protocol);
                    let upgrade = hyper::upgrade::on(&mut req);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        forward(TokioIo::new(upgraded), protocol, state).await;
                    });
                    reply.body(Full::new(Bytes::new())).unwrap()
                }
                Err(e) => status_reply(e.http_status(), "BadRequest", &e.to_string()),
            }
        }
        _ => status_reply(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    })
}

/// What a node agent does: run the command with the session's streams, report its status.
async fn run(mut session: ExecSession, command: Vec<String>) {
    let Some((program, args)) = command.split_first() else {
        let status = kinet_remotecommand::ExitStatus::Error("no command".into());
        let _ = session.finish(status).await;
        return;
    };
    let stdin = session.stdin();
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let status = kinet_remotecommand::ExitStatus::Error(format!("exec {program}: {e}"));
            let _ = session.finish(status).await;
            return;
        }
    };
    let mut stdin_copy = None;
    if let (Some(mut from), Some(mut to)) = (stdin, child.stdin.take()) {
        // Dropping the child's stdin when the client's ends gives the command EOF.
        stdin_copy = Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        }));
    }
    let mut copies = Vec::new();
    let outputs: [(Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, _); 2] = [
        (
            child.stdout.take().map(|s| Box::new(s) as _),
            session.stdout(),
        ),
        (
            child.stderr.take().map(|s| Box::new(s) as _),
            session.stderr(),
        ),
    ];
    for (from, to) in outputs {
        if let (Some(mut from), Some(mut to)) = (from, to) {
            copies.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = from.read(&mut buf).await {
                    if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to.shutdown().await;
            }));
        }
    }
    let status = child.wait().await;
    // Output copies end at the pipes' EOF; stdin's may still wait on the client.
    for c in copies {
        let _ = c.await;
    }
    if let Some(c) = stdin_copy {
        c.abort();
    }
    let status = match status {
        Ok(s) => s.into(),
        Err(e) => kinet_remotecommand::ExitStatus::Error(e.to_string()),
    };
    if let Err(e) = session.finish(status).await {
        eprintln!("finish: {e}");
    }
}

async fn forward<IO>(io: IO, protocol: PortForwardProtocol, state: Arc<State>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mut session = portforward_session(io, protocol).await;
    while let Some(mut req) = session.next().await {
        state.seen.lock().unwrap().forwarded_ports.push(req.port);
        let echo = state.echo;
        tokio::spawn(async move {
            if req.port != 80 {
                let msg = format!("nothing listens on port {}", req.port);
                let _ = req.error.write_all(msg.as_bytes()).await;
                return;
            }
            match TcpStream::connect(echo).await {
                Ok(mut tcp) => {
                    let _ = tokio::io::copy_bidirectional(&mut req.data, &mut tcp).await;
                }
                Err(e) => {
                    let _ = req.error.write_all(e.to_string().as_bytes()).await;
                }
            }
        });
    }
}

fn resources() -> serde_json::Value {
    let sub = |name: &str, kind: &str| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": ["create", "get"]});
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
            sub("pods/exec", "PodExecOptions"),
            sub("pods/attach", "PodAttachOptions"),
            sub("pods/portforward", "PodPortForwardOptions"),
        ]
    })
}

fn pod() -> serde_json::Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "p", "namespace": "default", "uid": "0b0b0b0b-0000-4000-8000-000000000001",
                     "resourceVersion": "1", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.2",
                   "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "busybox",
                                          "imageID": "", "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]}
    })
}
