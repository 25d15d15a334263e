//! `agnhost netexec`: the HTTP and UDP endpoints Kubernetes' network e2e tests talk to.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{dial, log};
use crate::flags::{parse_go_duration, FlagError, Flags, Kind};
use crate::gojson;
use crate::logfmt::go_time_string;
use crate::query;
use crate::run::{Signal, Signals, Started};
use crate::server::{self, Bind, Handler, Req, Resp};

/// netexec's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--http-port` (8080).
    pub http_port: u16,
    /// `--udp-port` (8081); `-1` turns UDP off.
    pub udp_port: Option<u16>,
    /// `--udp-listen-addresses`: empty means every address.
    pub udp_listen_addresses: Vec<IpAddr>,
    /// `--http-override`: serve this path and query for every request.
    pub http_override: String,
    /// `--delay-shutdown` seconds after SIGTERM.
    pub delay_shutdown: u64,
}

const SPEC: &[(&str, Kind)] = &[
    ("http-port", Kind::Value),
    ("udp-port", Kind::Value),
    ("sctp-port", Kind::Value),
    ("tls-cert-file", Kind::Value),
    ("tls-private-key-file", Kind::Value),
    ("http-override", Kind::Value),
    ("udp-listen-addresses", Kind::Value),
    ("delay-shutdown", Kind::Value),
];

impl Config {
    /// Parses netexec's flags (`--sctp-port` is accepted and ignored).
    pub fn parse(args: &[String]) -> Result<Config, FlagError> {
        let flags = Flags::parse(args, SPEC)?;
        if !flags.string("tls-cert-file").is_empty() {
            return Err(FlagError(
                "--tls-cert-file: HTTPS is not built into kinet's agnhost".into(),
            ));
        }
        let port = |name: &str, value: i64| {
            u16::try_from(value)
                .map_err(|_| FlagError(format!("--{name}: port {value} is out of range")))
        };
        let http_port = port("http-port", flags.int("http-port", 8080)?)?;
        let udp_port = match flags.int("udp-port", 8081)? {
            -1 => None,
            value => Some(port("udp-port", value)?),
        };
        let udp_listen_addresses = flags
            .string("udp-listen-addresses")
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse()
                    .map_err(|_| FlagError(format!("parseAddress: invalid address {a}")))
            })
            .collect::<Result<Vec<IpAddr>, _>>()?;
        let delay_shutdown = u64::try_from(flags.int("delay-shutdown", 0)?).unwrap_or(0);
        Ok(Config {
            http_port,
            udp_port,
            udp_listen_addresses,
            http_override: flags.string("http-override").to_string(),
            delay_shutdown,
        })
    }
}

/// A request to stop the process, from `/exit`, `/shutdown` or a failed UDP server.
#[derive(Debug, Clone, Copy)]
struct ExitRequest {
    code: i32,
    /// `None`: exit at once; `Some`: let connections finish for this long.
    drain: Option<Duration>,
}

struct State {
    hostname: String,
    started: Instant,
    udp_ready: AtomicBool,
    terminating: AtomicBool,
    http_override: String,
    exit: mpsc::UnboundedSender<ExitRequest>,
}

/// Binds netexec's sockets and returns its main loop.
pub(crate) async fn start(
    config: Config,
    bind: Bind,
    mut signals: Signals,
) -> std::io::Result<Started> {
    let listener = server::listen_tcp(bind, config.http_port).await?;
    let mut udp_sockets = Vec::new();
    if let Some(port) = config.udp_port {
        if config.udp_listen_addresses.is_empty() {
            udp_sockets.push(server::listen_udp(bind, None, port).await?);
        }
        for ip in &config.udp_listen_addresses {
            udp_sockets.push(server::listen_udp(bind, Some(*ip), port).await?);
        }
    }
    let tcp = vec![listener.local_addr()?];
    let udp = udp_sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<std::io::Result<Vec<_>>>()?;
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        hostname: server::hostname(),
        started: Instant::now(),
        udp_ready: AtomicBool::new(false),
        terminating: AtomicBool::new(false),
        http_override: config.http_override.clone(),
        exit: exit_tx,
    });
    let delay = Duration::from_secs(config.delay_shutdown);
    let main = async move {
        let mut udp_tasks = JoinSet::new();
        for socket in udp_sockets {
            udp_tasks.spawn(serve_udp(socket, state.clone()));
        }
        log(&format!("Started HTTP server on port {}", config.http_port));
        let code = Arc::new(AtomicI32::new(0));
        let stop = {
            let code = code.clone();
            let state = state.clone();
            async move {
                let request = tokio::select! {
                    Some(request) = exit_rx.recv() => request,
                    signal = signals.recv() => match signal {
                        Some(Signal::Terminate) => {
                            state.terminating.store(true, Ordering::SeqCst);
                            if !delay.is_zero() {
                                log(&format!("Sleeping {} seconds before terminating...", delay.as_secs()));
                                tokio::time::sleep(delay).await;
                            }
                            ExitRequest { code: 0, drain: None }
                        }
                        // Go's default for SIGINT.
                        Some(Signal::Interrupt) => ExitRequest { code: 2, drain: None },
                        None => std::future::pending().await,
                    },
                };
                code.store(request.code, Ordering::SeqCst);
                request.drain
            }
        };
        server::serve_http(listener, handler(state), stop).await;
        code.load(Ordering::SeqCst)
    };
    Ok(Started {
        tcp,
        udp,
        main: Box::pin(main),
    })
}

/// netexec's UDP protocol: `hostname`, `echo <msg>`, `clientip`, case-insensitive (the
/// whole message is lower-cased first, echoes included).
pub fn udp_reply(received: &[u8], client: SocketAddr, hostname: &str) -> Option<String> {
    let text = String::from_utf8_lossy(received).trim().to_lowercase();
    if text == "hostname" {
        Some(hostname.to_string())
    } else if let Some(message) = text.strip_prefix("echo ") {
        Some(message.to_string())
    } else if text == "clientip" {
        Some(client.to_string())
    } else {
        None
    }
}

async fn serve_udp(socket: UdpSocket, state: Arc<State>) {
    let local = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    log(&format!("Started UDP server on port {local}"));
    state.udp_ready.store(true, Ordering::SeqCst);
    let mut buf = [0u8; 2048];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                log(&format!(
                    "Error occurred: failed accepting UDP connections:{e}"
                ));
                state.udp_ready.store(false, Ordering::SeqCst);
                let _ = state.exit.send(ExitRequest {
                    code: 1,
                    drain: None,
                });
                return;
            }
        };
        let shown = server::canonical(client);
        match udp_reply(&buf[..n], shown, &state.hostname) {
            Some(reply) => {
                if let Err(e) = socket.send_to(reply.as_bytes(), client).await {
                    log(&format!(
                        "Error occurred: failed to write to UDP client {shown}:{e}"
                    ));
                }
            }
            None if n > 0 => log(&format!("Unknown UDP command received from {shown}")),
            None => {}
        }
    }
}

fn handler(state: Arc<State>) -> Handler {
    Arc::new(move |req: Req| {
        let state = state.clone();
        Box::pin(async move { route(&state, req).await })
    })
}

/// Form values as Go's `Request.FormValue` sees them: a urlencoded body first, then the
/// query.
fn form(req: &Req, query: &str) -> Vec<(String, String)> {
    let mut values = Vec::new();
    let urlencoded = req
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if urlencoded && matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
        values.extend(query::parse(&String::from_utf8_lossy(&req.body)));
    }
    values.extend(query::parse(query));
    values
}

async fn route(state: &State, req: Req) -> Resp {
    let (path, query) = if state.http_override.is_empty() {
        (
            req.uri.path().to_string(),
            req.uri.query().unwrap_or("").to_string(),
        )
    } else {
        let (p, q) = state
            .http_override
            .split_once('?')
            .unwrap_or((&state.http_override, ""));
        (p.to_string(), q.to_string())
    };
    let form = form(&req, &query);
    let value = |key: &str| query::get(&form, key).to_string();
    match path.as_str() {
        "/clientip" => {
            log("GET /clientip");
            text(StatusCode::OK, req.remote.to_string())
        }
        "/header" => header_endpoint(&req, &value("key")),
        "/dial" => {
            let params = query::parse(&query);
            match dial::Request::parse(&params) {
                Ok(request) => {
                    log(&request.log_line());
                    text(StatusCode::OK, dial::run(&request).await)
                }
                Err(message) => go_error(StatusCode::BAD_REQUEST, &message),
            }
        }
        "/echo" => echo(&value("msg"), &value("code")),
        "/exit" => exit(state, &value("code"), &value("timeout"), &value("wait")).await,
        "/healthz" => {
            log("GET /healthz");
            if state.udp_ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, String::new())
            } else {
                text(StatusCode::PRECONDITION_FAILED, String::new())
            }
        }
        "/readyz" => {
            log("GET /readyz");
            if state.terminating.load(Ordering::SeqCst) {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
            } else if state.udp_ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ok".into())
            } else {
                text(StatusCode::PRECONDITION_FAILED, String::new())
            }
        }
        "/hostname" | "/hostName" => {
            log(&format!("GET {path}"));
            text(StatusCode::OK, state.hostname.clone())
        }
        "/redirect" => redirect(&req, &value("location"), &value("code")),
        "/shell" => {
            let mut command = value("shellCommand");
            if command.is_empty() {
                command = value("cmd");
            }
            log(&format!("GET /shell?cmd={command}"));
            text(StatusCode::OK, shell(command).await)
        }
        "/shutdown" => {
            log("GET /shutdown");
            let _ = state.exit.send(ExitRequest {
                code: 0,
                drain: None,
            });
            std::future::pending().await
        }
        "/upload" => go_error(
            StatusCode::NOT_IMPLEMENTED,
            "upload is not built into kinet's agnhost",
        ),
        _ => {
            log("GET /");
            let now = go_time_string(Utc::now(), state.started.elapsed());
            text(StatusCode::OK, format!("NOW: {now}"))
        }
    }
}

/// A body written with `fmt.Fprint`: Go sniffs the content type.
fn text(status: StatusCode, body: String) -> Resp {
    let mut response = Response::builder().status(status);
    if !body.is_empty() {
        response = response.header(header::CONTENT_TYPE, sniff(&body));
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The part of Go's `http.DetectContentType` these bodies can reach.
fn sniff(body: &str) -> &'static str {
    let start = body.trim_start().to_ascii_lowercase();
    let html = [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<a",
        "<p",
        "<h1",
        "<br",
        "<div",
    ]
    .iter()
    .any(|tag| {
        start.starts_with(tag) && matches!(start.as_bytes().get(tag.len()), Some(b' ') | Some(b'>'))
    });
    if html {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Go's `http.Error`.
fn go_error(status: StatusCode, message: &str) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `/echo?msg=..&code=..`.
pub(crate) fn echo(msg: &str, code: &str) -> Resp {
    log(&format!("GET /echo?msg={msg}&code={code}"));
    if code.is_empty() {
        return text(StatusCode::OK, msg.to_string());
    }
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(status) => text(status, msg.to_string()),
        None => text(
            StatusCode::OK,
            format!("argument 'code' must be an integer or empty, got {code:?}\n"),
        ),
    }
}

fn header_endpoint(req: &Req, key: &str) -> Resp {
    if !key.is_empty() {
        log(&format!("GET /header?key={key}"));
        let value = req.header(key).unwrap_or("").to_string();
        return text(StatusCode::OK, value);
    }
    log("GET /header");
    // Go keeps headers under canonical names and moves Host out of the map.
    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in &req.headers {
        if name == header::HOST {
            continue;
        }
        let name = canonical_header(name.as_str());
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => headers.push((name, vec![value])),
        }
    }
    let entries: Vec<(&str, Vec<String>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    text(StatusCode::OK, gojson::object_of_lists(&entries))
}

/// `user-agent` → `User-Agent`.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn redirect(req: &Req, location: &str, code: &str) -> Resp {
    log(&format!(
        "{} /redirect?msg={location}&code={code}",
        req.method
    ));
    let status = if code.is_empty() {
        StatusCode::FOUND
    } else {
        match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => status,
            None => {
                return text(
                    StatusCode::OK,
                    format!("argument 'code' must be an integer or empty, got {code:?}\n"),
                )
            }
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::LOCATION, location);
    let mut body = String::new();
    if req.method == Method::GET || req.method == Method::HEAD {
        response = response.header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        let reason = status.canonical_reason().unwrap_or("");
        body = format!("<a href=\"{}\">{reason}</a>.\n\n", html_escape(location));
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn exit(state: &State, code: &str, timeout: &str, wait: &str) -> Resp {
    log(&format!(
        "GET /exit?code={code}&timeout={timeout}&wait={wait}"
    ));
    let timeout = match (timeout, parse_go_duration(timeout)) {
        ("", _) => Duration::ZERO,
        (_, Some(d)) => d,
        (raw, None) => {
            return text(
                StatusCode::OK,
                format!(
                    "argument 'timeout' must be a valid golang duration or empty, got {raw:?}\n"
                ),
            )
        }
    };
    let wait = match (wait, parse_go_duration(wait)) {
        ("", _) => Duration::ZERO,
        (_, Some(d)) => d,
        (raw, None) => {
            return text(
                StatusCode::OK,
                format!("argument 'wait' must be a valid golang duration or empty, got {raw:?}\n"),
            )
        }
    };
    let code = match code {
        "" => 0,
        raw => match raw.parse::<i32>() {
            Ok(c) => c,
            Err(_) => {
                return text(
                    StatusCode::OK,
                    format!("argument 'code' must be an integer [0-127] or empty, got {raw:?}\n"),
                )
            }
        },
    };
    log(&format!(
        "Will begin shutdown in {wait:?}, allowing {timeout:?} for connections to close, then will exit with {code}"
    ));
    tokio::time::sleep(wait).await;
    if timeout.is_zero() {
        // The real process exits here, before answering.
        let _ = state.exit.send(ExitRequest { code, drain: None });
        return std::future::pending().await;
    }
    let _ = state.exit.send(ExitRequest {
        code,
        drain: Some(timeout),
    });
    text(StatusCode::OK, String::new())
}

/// `/shell`: `/bin/sh -c <command>`, stdout and stderr together, as JSON.
async fn shell(command: String) -> String {
    let result = tokio::task::spawn_blocking(move || combined_output(&command))
        .await
        .unwrap_or_else(|e| (Vec::new(), Some(e.to_string())));
    let (output, error) = result;
    shell_json(&String::from_utf8_lossy(&output), error.as_deref())
}

/// The JSON `/shell` answers: `output` when there was any, `error` when the command failed.
pub fn shell_json(output: &str, error: Option<&str>) -> String {
    let mut entries = Vec::new();
    if !output.is_empty() {
        entries.push(("output", output.to_string()));
    }
    if let Some(error) = error {
        entries.push(("error", error.to_string()));
    }
    gojson::object_of_strings(&entries)
}

/// Go's `exec.Command(...).CombinedOutput()`: one pipe for both streams, and the error
/// worded as `*exec.ExitError` words it.
fn combined_output(command: &str) -> (Vec<u8>, Option<String>) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let (mut reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let stderr = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut child = match Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return (Vec::new(), Some(format!("fork/exec /bin/sh: {e}"))),
    };
    let mut output = Vec::new();
    let _ = reader.read_to_end(&mut output);
    let error = match child.wait() {
        Ok(status) if status.success() => None,
        Ok(status) => Some(match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("signal: {}", signal_name(signal)),
            _ => status.to_string(),
        }),
        Err(e) => Some(e.to_string()),
    };
    (output, error)
}

fn signal_name(signal: i32) -> String {
    match signal {
        1 => "hangup".into(),
        2 => "interrupt".into(),
        9 => "killed".into(),
        13 => "broken pipe".into(),
        15 => "terminated".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn flags() {
        let config = Config::parse(&[]).unwrap();
        assert_eq!(config.http_port, 8080);
        assert_eq!(config.udp_port, Some(8081));
        let config = Config::parse(&s(&[
            "--http-port=80",
            "--udp-port=-1",
            "--sctp-port=9",
            "--udp-listen-addresses=127.0.0.1,::1",
            "--delay-shutdown",
            "3",
        ]))
        .unwrap();
        assert_eq!(config.http_port, 80);
        assert_eq!(config.udp_port, None);
        assert_eq!(config.udp_listen_addresses.len(), 2);
        assert_eq!(config.delay_shutdown, 3);
        assert!(Config::parse(&s(&["--http-port=70000"])).is_err());
        assert!(Config::parse(&s(&["--udp-listen-addresses=nope"])).is_err());
        assert!(Config::parse(&s(&["--tls-cert-file=/localhost.crt"])).is_err());
    }

    #[test]
    fn udp_commands() {
        let client: SocketAddr = "10.0.0.9:5555".parse().unwrap();
        assert_eq!(
            udp_reply(b"hostname", client, "pod-a").as_deref(),
            Some("pod-a")
        );
        assert_eq!(
            udp_reply(b" HOSTNAME\n", client, "pod-a").as_deref(),
            Some("pod-a")
        );
        assert_eq!(
            udp_reply(b"echo Hello There", client, "p").as_deref(),
            Some("hello there")
        );
        assert_eq!(
            udp_reply(b"clientip", client, "p").as_deref(),
            Some("10.0.0.9:5555")
        );
        assert_eq!(udp_reply(b"echo", client, "p"), None);
        assert_eq!(udp_reply(b"what", client, "p"), None);
    }

    #[test]
    fn shell_answers() {
        assert_eq!(shell_json("hi\n", None), r#"{"output":"hi\n"}"#);
        assert_eq!(
            shell_json("", Some("exit status 3")),
            r#"{"error":"exit status 3"}"#
        );
        let (out, err) = combined_output("echo out; echo err >&2; exit 3");
        assert_eq!(String::from_utf8_lossy(&out), "out\nerr\n");
        assert_eq!(err.as_deref(), Some("exit status 3"));
        assert_eq!(
            combined_output("kill -9 $$").1.as_deref(),
            Some("signal: killed")
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(sniff("NOW: 2025"), "text/plain; charset=utf-8");
        assert_eq!(sniff("{\"responses\":[]}"), "text/plain; charset=utf-8");
        assert_eq!(sniff("<html><body>x"), "text/html; charset=utf-8");
        assert_eq!(canonical_header("x-forwarded-for"), "X-Forwarded-For");
    }
}
