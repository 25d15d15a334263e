//! The proxy in process, on loopback only: a request reaches its endpoint with forwarded
//! headers, a refused endpoint is skipped, an Upgrade becomes a tunnel, a table swap keeps an
//! established keep-alive connection, HTTPS serves the Secret's certificate by SNI with h2, a
//! chunked body over the limit gets 413, and a drain lets a request in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kinet_ingress::certs::CertStore;
use kinet_ingress::proxy::Proxy;
use kinet_ingress::{server, Limits, Objects, RouteTable, CONTROLLER};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An endpoint answering `<path> xff=<X-Forwarded-For> proto=<X-Forwarded-Proto>`, and
/// echoing bytes after a 101 for `Upgrade: echo`.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(|mut req: Request<Incoming>| async move {
                if req.headers().get("upgrade").is_some_and(|u| u == "echo") {
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(on.await.unwrap());
                        let mut buf = [0u8; 64];
                        let n = io.read(&mut buf).await.unwrap();
                        io.write_all(&buf[..n]).await.unwrap();
                    });
                    let resp = Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header("connection", "upgrade")
                        .header("upgrade", "echo")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    return Ok::<_, hyper::Error>(resp);
                }
                if req.method() == http::Method::POST {
                    // Answers once the whole body is in, so a body cut short never gets a 200.
                    let body = req.into_body().collect().await?.to_bytes();
                    return Ok(Response::new(Full::new(Bytes::from(format!(
                        "{} bytes",
                        body.len()
                    )))));
                }
                let h = |n: &str| {
                    req.headers()
                        .get(n)
                        .map_or("-".to_string(), |v| v.to_str().unwrap().to_string())
                };
                let text = format!(
                    "{} xff={} proto={}",
                    req.uri().path(),
                    h("x-forwarded-for"),
                    h("x-forwarded-proto")
                );
                Ok(Response::new(Full::new(Bytes::from(text))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Host `app.test` (TLS with Secret `app-tls`) → Service `app` on `endpoints`.
fn table(endpoints: &[SocketAddr]) -> Arc<RouteTable> {
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default",
                     "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
        "spec": {
            "tls": [{"hosts": ["app.test"], "secretName": "app-tls"}],
            "rules": [{"host": "app.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "app", "port": {"number": 80}}}}]}}],
        },
    }))
    .unwrap();
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "kinet", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": CONTROLLER},
    }))
    .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    let slices: Vec<EndpointSlice> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("app-{i}"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "app"}},
                "addressType": "IPv4",
                "ports": [{"port": ep.port()}],
                "endpoints": [{"addresses": [ep.ip().to_string()]}],
            }))
            .unwrap()
        })
        .collect();
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    Arc::new(RouteTable::build(
        &Objects {
            ingresses: &[&ing],
            classes: &[&class],
            services: &[&svc],
            slices: &slices,
        },
        CONTROLLER,
    ))
}

async fn proxy(endpoints: &[SocketAddr]) -> (Arc<Proxy>, SocketAddr) {
    proxy_with(endpoints, Limits::default()).await
}

async fn proxy_with(endpoints: &[SocketAddr], limits: Limits) -> (Arc<Proxy>, SocketAddr) {
    let proxy = Arc::new(Proxy::new(limits));
    proxy.swap(table(endpoints));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve_http(listener, proxy.clone(), Arc::default()));
    (proxy, addr)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender
}

async fn get(sender: &mut Sender, host: &str, path: &str) -> (StatusCode, String) {
    let req = Request::get(path)
        .header("host", host)
        .header("x-forwarded-for", "203.0.113.9")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn routes_with_forwarded_headers_and_skips_refused_endpoints() {
    let (proxy, addr) = proxy(&[closed_port().await, backend().await]).await;
    let mut c = connect(addr).await;
    for _ in 0..2 {
        let (status, body) = get(&mut c, "app.test", "/x").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "/x xff=127.0.0.1 proto=http");
    }
    assert_eq!(
        get(&mut c, "other.test", "/").await.0,
        StatusCode::NOT_FOUND
    );
    let metrics = proxy.metrics.render();
    assert!(
        metrics
            .contains("kinet_ingress_upstream_connect_errors_total{backend=\"default/app:80\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("code=\"200\"} 2"), "{metrics}");
}

#[tokio::test]
async fn a_table_swap_keeps_established_connections() {
    let (proxy, addr) = proxy(&[backend().await]).await;
    let mut c = connect(addr).await;
    assert_eq!(get(&mut c, "app.test", "/").await.0, StatusCode::OK);
    proxy.swap(Arc::new(RouteTable::default()));
    // Same connection, new table.
    assert_eq!(get(&mut c, "app.test", "/").await.0, StatusCode::NOT_FOUND);
    proxy.swap(table(&[]));
    assert_eq!(
        get(&mut c, "app.test", "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn upgrades_become_tunnels() {
    let (_proxy, addr) = proxy(&[backend().await]).await;
    let mut c = connect(addr).await;
    let req = Request::get("/ws")
        .header("host", "app.test")
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(Empty::new())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

/// The status line's code of a chunked POST of `len` bytes (two chunks), on a new connection.
async fn chunked_post(addr: SocketAddr, len: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    for part in [len / 2, len - len / 2] {
        let chunk = format!("{part:x}\r\n{}\r\n", "x".repeat(part));
        // The proxy may stop reading once over the limit; what it answers is what counts.
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.get(9..12).unwrap_or(&answer).to_string()
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_413() {
    let limits = Limits {
        max_body: 1000,
        ..Limits::default()
    };
    let (_proxy, addr) = proxy_with(&[backend().await], limits).await;
    assert_eq!(chunked_post(addr, 1000).await, "200");
    assert_eq!(chunked_post(addr, 5000).await, "413");
}

fn tls_secret(names: &[&str]) -> (Secret, rustls::pki_types::CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "app-tls", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64(cert.pem().as_bytes()),
            "tls.key": base64(key.serialize_pem().as_bytes()),
        },
    }))
    .unwrap();
    (secret, cert.der().clone())
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test]
async fn https_by_sni_with_h2() {
    let endpoint = backend().await;
    let table = table(&[endpoint]);
    let (secret, der) = tls_secret(&["app.test"]);
    let certs = Arc::new(CertStore::new(kinet_ingress::certs::fallback().unwrap()));
    assert!(certs.update(&table, &[&secret]).is_empty());
    let proxy = Arc::new(Proxy::new(Limits::default()));
    proxy.swap(table);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve_https(
        listener,
        proxy,
        Arc::new(server::tls_config(certs)),
        Arc::default(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("app.test").unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .expect("the Secret's certificate verifies for app.test");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("https://app.test/secure")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "/secure xff=127.0.0.1 proto=https");

    // Another name gets the fallback, which does not verify as app.test's.
    let stream = TcpStream::connect(addr).await.unwrap();
    let other = rustls::pki_types::ServerName::try_from("other.test").unwrap();
    assert!(connector.connect(other, stream).await.is_err());
}

/// An endpoint that reports each request's arrival on `arrived`, and answers it only once
/// `release` fires.
async fn held_backend() -> (
    SocketAddr,
    tokio::sync::mpsc::Receiver<()>,
    Arc<tokio::sync::Notify>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, rx) = tokio::sync::mpsc::channel(8);
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (arrived, held) = (arrived.clone(), held.clone());
            let service = service_fn(move |_req: Request<Incoming>| {
                let (arrived, held) = (arrived.clone(), held.clone());
                async move {
                    arrived.send(()).await.unwrap();
                    held.notified().await;
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("finished"))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, rx, release)
}

#[tokio::test]
async fn a_drain_closes_the_listener_and_finishes_requests_in_flight() {
    let (endpoint, mut arrived, release) = held_backend().await;
    let proxy = Arc::new(Proxy::new(Limits::default()));
    proxy.swap(table(&[endpoint]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let drain = Arc::new(kinet_ingress::drain::Drain::default());
    tokio::spawn(server::serve_http(listener, proxy, drain.clone()));
    let idle = connect(addr).await;
    let mut busy = connect(addr).await;
    let in_flight = tokio::spawn(async move { get(&mut busy, "app.test", "/").await });
    arrived.recv().await.unwrap();

    let draining = drain.clone();
    let drained = tokio::spawn(async move {
        draining
            .drain(kinet_ingress::drain::Timing {
                delay: std::time::Duration::ZERO,
                grace: std::time::Duration::from_secs(30),
            })
            .await
    });
    // The listener closes: new connections are refused.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::task::yield_now().await;
    }
    assert!(drain.draining());
    // The idle keep-alive connection is closed; the busy one finishes its request.
    while !idle.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle connection kept"
        );
        tokio::task::yield_now().await;
    }
    assert!(!drained.is_finished());
    release.notify_one();
    assert_eq!(
        in_flight.await.unwrap(),
        (StatusCode::OK, "finished".to_string())
    );
    assert!(drained.await.unwrap(), "every connection finished in time");
}
