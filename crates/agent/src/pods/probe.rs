//! Readiness, liveness and startup probes as the kubelet runs them: httpGet and tcpSocket
//! from the node to the pod's IP (the agent sits in the node namespace, on `cbr0`'s side),
//! exec through `nsenter` into the container's namespaces, grpc with the gRPC health-checking protocol.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A probe's timing, with the API defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Consecutive successes to count as success.
    pub success_threshold: i32,
    /// Consecutive failures to count as failure.
    pub failure_threshold: i32,
}

impl Timing {
    /// The probe's settings, defaulted as the API server does.
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
        }
    }
}

fn port_of(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} not found in container")),
    }
}

/// Runs one probe attempt; `Err` carries the kubelet-style failure message.
pub async fn attempt(
    p: &Probe,
    c: &Container,
    pod_ip: Ipv4Addr,
    container_pid: Option<u32>,
    timeout: Duration,
) -> Result<(), String> {
    let run = async {
        if let Some(h) = &p.http_get {
            let port = port_of(c, &h.port)?;
            let host = h.host.as_deref().filter(|h| !h.is_empty());
            let ip = host.and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
            http_get(
                SocketAddr::from((ip, port)),
                h.path.as_deref().unwrap_or("/"),
            )
            .await
        } else if let Some(t) = &p.tcp_socket {
            let port = port_of(c, &t.port)?;
            let addr = SocketAddr::from((pod_ip, port));
            TcpStream::connect(addr)
                .await
                .map(|_| ())
                .map_err(|e| format!("dial tcp {addr}: connect: {e}"))
        } else if let Some(e) = &p.exec {
            exec(container_pid, e.command.as_deref().unwrap_or(&[])).await
        } else if let Some(g) = &p.grpc {
            let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
            grpc_health(
                SocketAddr::from((pod_ip, port)),
                g.service.as_deref().unwrap_or(""),
                timeout,
            )
            .await
        } else {
            Err("probe has no handler".into())
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "context deadline exceeded (timeout {}s)",
            timeout.as_secs()
        )),
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> Result<(), String> {
    let url = format!("http://{addr}{path}");
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {addr}: connect: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = vec![0u8; 64];
    let n = s
        .read(&mut head)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// `grpc.health.v1.Health/Check` over plaintext HTTP/2, with the kubelet's messages.
async fn grpc_health(addr: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

    let secs = timeout.as_secs();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| {
            format!("timeout: failed to connect service \"{addr}\" within {secs}s: {e}")
        })?;
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let reply = HealthClient::new(channel)
        .check(request)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::Unimplemented => format!(
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            tonic::Code::DeadlineExceeded => {
                format!("timeout: health rpc did not complete within {secs}s")
            }
            // As grpc-go prints a status.
            code => format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            ),
        })?
        .into_inner();
    match reply.status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!(
            "service unhealthy (responded with \"{}\")",
            other.as_str_name()
        )),
    }
}

/// Runs the probe's command in the container's namespaces, as `kubectl exec` does.
async fn exec(container_pid: Option<u32>, command: &[String]) -> Result<(), String> {
    if command.is_empty() {
        return Err("exec probe has an empty command".into());
    }
    let pid = container_pid.ok_or("the container has not started")?;
    let nsenter = kinet_node_api::exec::host_program("nsenter");
    let argv = kinet_node_api::exec::argv(&nsenter.to_string_lossy(), None, pid, None, command);
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", kinet_runtime::config::DEFAULT_PATH)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Err(text.trim().to_string())
    }
}

/// One probe's running state: consecutive results and whether it has passed.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// The probe's timing.
    pub timing: Timing,
    /// When the next attempt is due.
    pub next: tokio::time::Instant,
    successes: i32,
    failures: i32,
    /// The current verdict (None before the thresholds decide).
    pub verdict: Option<bool>,
    /// Whether an attempt is in flight.
    pub busy: bool,
}

impl Tracker {
    /// A tracker for a container that started at `started`.
    pub fn new(p: &Probe, started: tokio::time::Instant) -> Tracker {
        let timing = Timing::of(p);
        Tracker {
            timing,
            next: started + timing.initial_delay,
            successes: 0,
            failures: 0,
            verdict: None,
            busy: false,
        }
    }

    /// Records an attempt's result; returns the verdict if it changed.
    pub fn record(&mut self, ok: bool, now: tokio::time::Instant) -> Option<bool> {
        self.busy = false;
        // Until the first verdict, retry within a second: a server that needs a moment to
        // listen is Ready as soon as it does, not a whole period later (kinet's one
        // departure from the kubelet's timing; it never makes a pod Ready later).
        let period = match self.verdict {
            None => self.timing.period.min(Duration::from_secs(1)),
            Some(_) => self.timing.period,
        };
        self.next = now + period;
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let verdict = if self.successes >= self.timing.success_threshold {
            Some(true)
        } else if self.failures >= self.timing.failure_threshold {
            Some(false)
        } else {
            self.verdict
        };
        let changed = verdict != self.verdict;
        self.verdict = verdict;
        changed.then_some(verdict).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_verdicts() {
        let p: Probe = serde_json::from_value(serde_json::json!({
            "tcpSocket": {"port": 80}, "failureThreshold": 2, "periodSeconds": 1}))
        .unwrap();
        let now = tokio::time::Instant::now();
        let mut t = Tracker::new(&p, now);
        assert_eq!(t.record(false, now), None);
        assert_eq!(
            t.next,
            now + Duration::from_secs(1),
            "fast retry before a verdict"
        );
        assert_eq!(t.record(true, now), Some(true));
        assert_eq!(t.record(false, now), None);
        assert_eq!(t.record(false, now), Some(false));
        assert_eq!(t.record(true, now), Some(true));
    }

    #[tokio::test]
    async fn grpc_probes_ask_the_health_service() {
        use tonic_health::ServingStatus;
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("up", ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("down", ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let server = tokio::spawn(server);
        let second = Duration::from_secs(5);

        // The empty service name is the server as a whole, which tonic-health reports SERVING.
        assert_eq!(grpc_health(addr, "", second).await, Ok(()));
        assert_eq!(grpc_health(addr, "up", second).await, Ok(()));
        let down = grpc_health(addr, "down", second).await.unwrap_err();
        assert_eq!(down, "service unhealthy (responded with \"NOT_SERVING\")");
        let unknown = grpc_health(addr, "nope", second).await.unwrap_err();
        assert_eq!(
            unknown,
            "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
        );

        server.abort();
        let _ = server.await;
        let closed = grpc_health(addr, "", second).await.unwrap_err();
        assert!(closed.starts_with("timeout: failed to connect"), "{closed}");
    }

    #[tokio::test]
    async fn grpc_probes_go_to_the_pod_ip_and_port() {
        let p: Probe = serde_json::from_value(serde_json::json!({
            "grpc": {"port": 1, "service": "x"}}))
        .unwrap();
        let c = Container::default();
        let err = attempt(&p, &c, Ipv4Addr::LOCALHOST, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]}))
        .unwrap();
        assert_eq!(port_of(&c, &IntOrString::String("http".into())), Ok(8080));
        assert!(port_of(&c, &IntOrString::String("grpc".into())).is_err());
    }
}
