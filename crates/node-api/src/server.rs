//! The HTTPS server: TLS with a required client certificate, then one handler per route.
//! Errors are plain text with a status, as the kubelet writes them; the API server turns
//! them into Status objects (logs) or passes them on (upgrades).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kinet_remotecommand::{
    exec_session, negotiate_exec, negotiate_portforward, portforward_session, ExecSession,
    StreamOptions,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::logs::{self, LogOptions};
use crate::route::{Route, Target};
use crate::{attach, exec, portforward, pty, tls, ContainerInfo, Pods};

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Serves the agent's API on `listener` until `shutdown` resolves. `tls` comes from
/// [`crate::server_config`]. Sessions already upgraded run on after shutdown until they end.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    pods: Arc<dyn Pods>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let conn = move |tls: TlsStream<TcpStream>, peer: SocketAddr| {
        let pods = pods.clone();
        async move {
            let allowed = match tls.get_ref().1.peer_certificates() {
                Some([cert, ..]) => tls::check_client(cert),
                _ => Err("no client certificate".to_string()),
            };
            let service = service_fn(move |req| {
                let pods = pods.clone();
                let allowed = allowed.clone();
                async move {
                    Ok::<_, Infallible>(match allowed {
                        Ok(()) => handle(req, pods).await,
                        Err(why) => text(StatusCode::FORBIDDEN, format!("Forbidden: {why}")),
                    })
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%peer, error = %e, "node API connection ended");
            }
        }
    };
    kinet_tls_server::serve("node-api", listener, tls, shutdown, conn).await;
    Ok(())
}

async fn handle(req: Request<Incoming>, pods: Arc<dyn Pods>) -> Reply {
    let Some(route) = Route::parse(req.method(), req.uri().path()) else {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let result = match route {
        Route::Healthz => Ok(text(StatusCode::OK, "ok")),
        Route::ContainerLogs(target) => container_logs(pods, &target, &query).await,
        Route::Exec(target) => exec(req, pods, &target, &query).await,
        Route::Attach(target) => attach(req, pods, &target, &query).await,
        Route::PortForward(target) => port_forward(req, pods, &target),
    };
    result.unwrap_or_else(|(status, message)| text(status, message))
}

type Handled = Result<Reply, (StatusCode, String)>;

async fn container_logs(pods: Arc<dyn Pods>, target: &Target, query: &str) -> Handled {
    let opts = LogOptions::from_query(query).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
    let rx = logs::open(pods, target, opts).await.map_err(|e| {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, e.message)
    })?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(ChannelBody(rx).boxed())
        .expect("valid response"))
}

/// The container, which must be running in a running sandbox (the kubelet's wording
/// otherwise), with the argv prefix that enters it. A container reported running has its
/// PID written by its shim a moment later, so a client that acts on the report at once
/// (`kubectl run -it`) waits for it briefly instead of being refused.
async fn running(
    pods: &dyn Pods,
    target: &Target,
) -> Result<(ContainerInfo, Vec<String>), (StatusCode, String)> {
    let deadline = tokio::time::Instant::now() + PID_GRACE;
    loop {
        let info = pods
            .container(&target.namespace, &target.pod, target.container.as_deref())
            .map_err(|m| (StatusCode::NOT_FOUND, m))?;
        match (info.running, info.sandbox_pid.and(info.enter.clone())) {
            (true, Some(enter)) => return Ok((info, enter)),
            (true, None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            _ => {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("container not found ({:?})", info.name),
                ))
            }
        }
    }
}

/// How long a running container's PID may take to appear.
const PID_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

async fn exec(
    mut req: Request<Incoming>,
    pods: Arc<dyn Pods>,
    target: &Target,
    query: &str,
) -> Handled {
    let opts = StreamOptions::from_query(query);
    let command = StreamOptions::command_from_query(query);
    if command.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container".into(),
        ));
    }
    no_streams(&opts)?;
    let (mut info, enter) = running(pods.as_ref(), target).await?;
    let (protocol, reply) = negotiate_exec(req.headers()).map_err(refused)?;
    if opts.tty && !info.env.iter().any(|(k, _)| k == "TERM") {
        // What container runtimes give a terminal session.
        info.env.push(("TERM".into(), "xterm".into()));
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(session) = start_session(upgrade, protocol, opts).await else {
            return;
        };
        let command = exec::command(&info, &enter, &command, opts.tty);
        if opts.tty {
            pty::run_tty(session, command).await;
        } else {
            exec::run_piped(session, command).await;
        }
    });
    Ok(reply.body(empty()).expect("valid 101"))
}

/// Attach joins the container's output as it is written (its log from now on, each stream to
/// its own channel) and, when the container takes stdin, writes the client's input to the
/// container's stdin FIFO; terminal resizes go to its terminal.
async fn attach(
    mut req: Request<Incoming>,
    pods: Arc<dyn Pods>,
    target: &Target,
    query: &str,
) -> Handled {
    let mut opts = StreamOptions::from_query(query);
    no_streams(&opts)?;
    let (info, _) = running(pods.as_ref(), target).await?;
    if opts.stdin && info.stdin.is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "container {:?} does not take stdin (its spec has no stdin: true)",
                info.name
            ),
        ));
    }
    // Whether there is a terminal was decided when the container started, as the kubelet
    // takes it from the container's spec.
    opts.tty = info.tty.is_some();
    let (protocol, reply) = negotiate_exec(req.headers()).map_err(refused)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let target = Target {
        container: Some(info.name.clone()),
        ..target.clone()
    };
    tokio::spawn(async move {
        let Some(session) = start_session(upgrade, protocol, opts).await else {
            return;
        };
        attach::run(session, pods, target, info).await;
    });
    Ok(reply.body(empty()).expect("valid 101"))
}

fn port_forward(mut req: Request<Incoming>, pods: Arc<dyn Pods>, target: &Target) -> Handled {
    let info = pods
        .container(&target.namespace, &target.pod, None)
        .map_err(|m| (StatusCode::NOT_FOUND, m))?;
    let Some(pid) = info.sandbox_pid else {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pod not found (\"{}_{}\")", target.pod, target.namespace),
        ));
    };
    let (protocol, reply) = negotiate_portforward(req.headers()).map_err(refused)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let pod = format!("{}/{}", target.namespace, target.pod);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let session = portforward_session(TokioIo::new(upgraded), protocol).await;
                portforward::serve_session(session, pid, pod).await;
            }
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    Ok(reply.body(empty()).expect("valid 101"))
}

async fn start_session(
    upgrade: hyper::upgrade::OnUpgrade,
    protocol: kinet_remotecommand::Protocol,
    opts: StreamOptions,
) -> Option<ExecSession> {
    let upgraded = match upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "exec upgrade failed");
            return None;
        }
    };
    match exec_session(TokioIo::new(upgraded), protocol, opts).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "exec session did not start");
            None
        }
    }
}

fn no_streams(opts: &StreamOptions) -> Result<(), (StatusCode, String)> {
    if opts.stdin || opts.stdout || opts.stderr {
        Ok(())
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            kinet_remotecommand::Error::NoStreams.to_string(),
        ))
    }
}

fn refused(e: kinet_remotecommand::Error) -> (StatusCode, String) {
    (e.http_status(), e.to_string())
}

fn empty() -> BoxBody<Bytes, Infallible> {
    Full::new(Bytes::new()).boxed()
}

fn text(status: StatusCode, message: impl Into<String>) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(message.into())).boxed())
        .expect("valid response")
}

/// A response body fed by a channel; it ends when the sender is dropped. The API server uses
/// it too, for the log streams it relays; the agent's logs send [`logs::Chunk`]s (both
/// streams, in the order they were written).
pub struct ChannelBody<T = Bytes>(pub mpsc::Receiver<T>);

impl<T: Into<Bytes>> Body for ChannelBody<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(Frame::data(b.into()))))
    }
}
