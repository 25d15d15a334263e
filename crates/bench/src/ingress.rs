//! `kinet bench ingress`: kinet's ingress controller against nginx (Debian's nginx-light)
//! configured as a reverse proxy with the same route to the same endpoints.
//!
//! An in-process API server holds the Ingress, its Service, EndpointSlices and TLS Secret;
//! the endpoints are two small HTTP servers on loopback in the benchmark's own process. kinet's controller runs as
//! a child process (this binary, `kinet bench ingress --serve-api URL`) watching that API, and
//! nginx from a generated configuration; each proxy is pinned to the same CPU and has one worker
//! (nginx as one process, `master_process off`, so that killing it leaves no workers; kinet
//! on one core), wrk is pinned to another. Both log every
//! request. Reported: requests/s and p50/p99 latency with keep-alive over 1 and 64 connections,
//! plain and HTTPS; for kinet alone, Ingress change → served (p50/p99), and resident memory with
//! many Ingresses.

mod wrk;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::dns::on_path;
use super::dns::servers::{Server, ENV_CA, ENV_TOKEN};
use super::stats::{ms, Samples};

const NS: &str = "bench-ingress";
const HOST: &str = "bench.example.com";

#[derive(Debug, Clone)]
pub struct Options {
    /// Length of each wrk run.
    pub seconds: u64,
    /// Ingress changes timed until served.
    pub changes: usize,
    /// Ingresses created for the memory figure.
    pub ingresses: usize,
    /// The CPU both proxies are pinned to; wrk and the endpoints get `client_cpu`.
    pub proxy_cpu: usize,
    pub client_cpu: usize,
}

/// A free loopback port (the kernel's pick; the proxy binds it next).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The ports a proxy listens on.
#[derive(Debug, Clone, Copy)]
struct Ports {
    http: u16,
    https: u16,
}

pub async fn run(opts: Options) -> Result<()> {
    for tool in ["wrk", "nginx", "taskset"] {
        if !on_path(tool) {
            bail!("{tool} is not installed (apt-get install wrk nginx-light util-linux)");
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("kinet-bench-ingress-")
        .tempdir()?;
    // This process serves the endpoints, on the client's CPU.
    let pin = Command::new("taskset")
        .args([
            "-a",
            "-cp",
            &opts.client_cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .await?;
    if !pin.success() {
        bail!(
            "taskset could not pin the benchmark to CPU {}",
            opts.client_cpu
        );
    }
    let endpoint_addrs = vec![endpoint().await?, endpoint().await?];
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    super::api::namespace(&client, NS).await?;
    let (crt, key) = write_certificate(scratch.path())?;
    objects(&client, &endpoint_addrs, &crt, &key).await?;

    let kinet_ports = Ports {
        http: free_port()?,
        https: free_port()?,
    };
    let kinet = kinet_child(&api, kinet_ports, opts.proxy_cpu).await?;
    wait_served(kinet_ports.http, HOST, Duration::from_secs(10)).await?;
    let nginx_ports = Ports {
        http: free_port()?,
        https: free_port()?,
    };
    let _nginx = nginx(scratch.path(), nginx_ports, &endpoint_addrs, opts.proxy_cpu).await?;
    wait_served(nginx_ports.http, HOST, Duration::from_secs(10)).await?;

    let mut report = String::new();
    writeln!(
        report,
        "| load | kinet rps | nginx rps | ratio | kinet p50 / p99 | nginx p50 / p99 |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (scheme, connections) in [("http", 1), ("http", 64), ("https", 1), ("https", 64)] {
        let url = |p: Ports| {
            let port = if scheme == "http" { p.http } else { p.https };
            format!("{scheme}://127.0.0.1:{port}/")
        };
        let k = wrk::run(
            opts.client_cpu,
            connections,
            opts.seconds,
            &url(kinet_ports),
            HOST,
        )
        .await?;
        let n = wrk::run(
            opts.client_cpu,
            connections,
            opts.seconds,
            &url(nginx_ports),
            HOST,
        )
        .await?;
        if k.errors + n.errors > 0 {
            eprintln!(
                "   note: errors during {scheme} c={connections}: kinet {}, nginx {}",
                k.errors, n.errors
            );
        }
        writeln!(
            report,
            "| {scheme}, {connections} conn | {:.0} | {:.0} | {:.2}× | {} / {} | {} / {} |",
            k.rps,
            n.rps,
            k.rps / n.rps,
            ms(k.p50),
            ms(k.p99),
            ms(n.p50),
            ms(n.p99)
        )?;
    }
    let changes = change_latency(&client, kinet_ports.http, opts.changes).await?;
    writeln!(
        report,
        "\nIngress change → served by kinet ({} changes): p50 {}, p99 {}",
        changes.len(),
        ms(changes.p50()),
        ms(changes.p99())
    )?;
    let before = kinet.rss_kib();
    many_ingresses(&client, kinet_ports.http, opts.ingresses).await?;
    let after = kinet.rss_kib();
    writeln!(
        report,
        "kinet controller resident memory: {} MiB with 1 Ingress, {} MiB with {} more",
        before / 1024,
        after / 1024,
        opts.ingresses
    )?;
    print!("{report}");
    Ok(())
}

/// An endpoint answering every request with a small page (as long as nginx's welcome page),
/// HTTP/1.1 keep-alive, no log.
async fn endpoint() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let page = bytes::Bytes::from(vec![b'x'; 615]);
        while let Ok((stream, _)) = listener.accept().await {
            let page = page.clone();
            let service = hyper::service::service_fn(move |_req| {
                let body = http_body_util::Full::new(page.clone());
                async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    Ok(addr)
}

/// A self-signed certificate for [`HOST`], as PEM files both proxies read.
fn write_certificate(dir: &Path) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])?.self_signed(&key)?;
    let (crt_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::write(dir.join("tls.crt"), &crt_pem)?;
    std::fs::write(dir.join("tls.key"), &key_pem)?;
    Ok((crt_pem, key_pem))
}

fn typed<T: k8s_openapi::serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// The IngressClass, Service `web` with one EndpointSlice per endpoint, the TLS Secret and
/// the Ingress `bench` routing [`HOST`] to `web`.
async fn objects(client: &Client, endpoints: &[SocketAddr], crt: &str, key: &str) -> Result<()> {
    let pp = PostParams::default();
    let class: IngressClass = typed(json!({
        "metadata": {"name": "kinet", "annotations": {kinet_ingress::class::DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": kinet_ingress::CONTROLLER},
    }))?;
    Api::<IngressClass>::all(client.clone())
        .create(&pp, &class)
        .await?;
    let svc: Service = typed(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }))?;
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&pp, &svc)
        .await?;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), NS);
    for (i, ep) in endpoints.iter().enumerate() {
        let slice: EndpointSlice = typed(json!({
            "metadata": {"name": format!("web-{i}"), "namespace": NS, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": ep.port()}],
            "endpoints": [{"addresses": [ep.ip().to_string()], "conditions": {"ready": true}}],
        }))?;
        slices.create(&pp, &slice).await?;
    }
    let mut secret: Secret = typed(json!({
        "metadata": {"name": "bench-tls", "namespace": NS},
        "type": "kubernetes.io/tls",
    }))?;
    let pem = |s: &str| k8s_openapi::ByteString(s.as_bytes().to_vec());
    secret.data = Some([("tls.crt".into(), pem(crt)), ("tls.key".into(), pem(key))].into());
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&pp, &secret)
        .await?;
    let ingress: Ingress = typed(json!({
        "metadata": {"name": "bench", "namespace": NS,
                     "annotations": {kinet_ingress::routes::SSL_REDIRECT_ANNOTATION: "false"}},
        "spec": {
            "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
            "rules": [rule(HOST)],
        },
    }))?;
    Api::<Ingress>::namespaced(client.clone(), NS)
        .create(&pp, &ingress)
        .await?;
    Ok(())
}

fn rule(host: &str) -> serde_json::Value {
    json!({"host": host, "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}})
}

/// kinet's controller as a child process on `cpu`, watching `api`.
async fn kinet_child(api: &kinet_testkit::TestApi, ports: Ports, cpu: usize) -> Result<Server> {
    let child = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .arg(std::env::current_exe()?)
        .args(["bench", "ingress", "--serve-api", &api.url])
        .arg(format!("--serve-ports={},{}", ports.http, ports.https))
        .env(ENV_CA, &api.ca_pem)
        .env(ENV_TOKEN, &api.token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the kinet ingress child")?;
    Ok(Server::new(child, (Ipv4Addr::LOCALHOST, ports.http).into()))
}

/// The child side: the controller, listening on loopback (one tokio worker: `taskset` leaves
/// it one CPU).
pub async fn serve_child(url: &str, ports: &str) -> Result<()> {
    let (http, https) = ports.split_once(',').context("--serve-ports HTTP,HTTPS")?;
    let config = kinet_ingress::Config {
        http: (Ipv4Addr::LOCALHOST, http.parse()?).into(),
        https: (Ipv4Addr::LOCALHOST, https.parse()?).into(),
        metrics: (Ipv4Addr::LOCALHOST, 0).into(),
        controller: kinet_ingress::CONTROLLER.into(),
        publish_service: None,
        limits: kinet_ingress::Limits::default(),
        drain: kinet_ingress::drain::Timing::default(),
    };
    let ca = std::env::var(ENV_CA).context(ENV_CA)?;
    let token = std::env::var(ENV_TOKEN).context(ENV_TOKEN)?;
    let client = kinet_controllers::client::connect(url, &ca, &token)?;
    kinet_ingress::run(client, config).await
}

/// nginx as a single process on `cpu`, proxying [`HOST`] to `endpoints` with keep-alive.
/// It reads the certificate [`write_certificate`] left in `dir`.
async fn nginx(dir: &Path, ports: Ports, endpoints: &[SocketAddr], cpu: usize) -> Result<Server> {
    let d = dir.display();
    let servers: String = endpoints.iter().map(|e| format!("server {e}; ")).collect();
    let conf = format!(
        "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
  upstream web {{ {servers}keepalive 64; }}\n\
  server {{\n    listen 127.0.0.1:{http};\n    listen 127.0.0.1:{https} ssl http2;\n    server_name {HOST};\n    ssl_certificate {d}/tls.crt;\n    ssl_certificate_key {d}/tls.key;\n\
    location / {{\n      proxy_pass http://web;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Real-IP $remote_addr;\n      proxy_set_header X-Forwarded-For $remote_addr;\n      proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
        http = ports.http,
        https = ports.https,
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("taskset")
        .args([
            "-c",
            &cpu.to_string(),
            "nginx",
            "-e",
            &format!("{d}/error.log"),
            "-p",
        ])
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .kill_on_drop(true)
        .spawn()
        .context("starting nginx")?;
    Ok(Server::new(child, (Ipv4Addr::LOCALHOST, ports.http).into()))
}

/// Whether a new connection's `GET /` with `Host: host` gets a 200.
async fn served(port: u16, host: &str) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
        return false;
    };
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.is_ok() && &head[8..12] == b" 200"
}

async fn wait_served(port: u16, host: &str, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    while !served(port, host).await {
        if start.elapsed() > within {
            bail!("{host} was not served on port {port} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

/// Adds a host to the Ingress `n` times, timing each until it is served.
async fn change_latency(client: &Client, port: u16, n: usize) -> Result<Samples> {
    let api = Api::<Ingress>::namespaced(client.clone(), NS);
    let mut samples = Samples::default();
    let mut rules = vec![rule(HOST)];
    for i in 0..n {
        let host = format!("change-{i}.example.com");
        rules.push(rule(&host));
        let patch = json!({"spec": {"rules": rules}});
        let start = Instant::now();
        api.patch("bench", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait_served(port, &host, Duration::from_secs(10)).await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Creates `n` Ingresses of one host each and waits until the last is served.
async fn many_ingresses(client: &Client, port: u16, n: usize) -> Result<()> {
    let api = Api::<Ingress>::namespaced(client.clone(), NS);
    for i in 0..n {
        let ing: Ingress = typed(json!({
            "metadata": {"name": format!("many-{i}"), "namespace": NS},
            "spec": {"rules": [rule(&format!("many-{i}.example.com"))]},
        }))?;
        api.create(&PostParams::default(), &ing).await?;
    }
    if n > 0 {
        wait_served(
            port,
            &format!("many-{}.example.com", n - 1),
            Duration::from_secs(60),
        )
        .await?;
        // Let the allocator settle after the burst of rebuilds.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
