//! The built-in images served on 127.0.0.1 with OS-assigned ports, driven by `curl` and
//! a UDP socket on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use kinet_images::{start, web, Bind, Running, Signal};
use tokio::net::UdpSocket;
use tokio::process::Command;

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

async fn curl(args: &[&str]) -> Reply {
    let output = Command::new("curl")
        .args(["-s", "-i", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    curl(&[&format!("http://{addr}{path}")]).await
}

fn loopback() -> Bind {
    Bind::At("127.0.0.1".parse().unwrap())
}

async fn run(image: &str, args: &[&str]) -> Running {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    start(image, &args, loopback()).await.expect("starts")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim_end()
        .to_string()
}

async fn udp_ask(server: SocketAddr, message: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(message.as_bytes(), server).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a UDP answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn exit_code(running: Running) -> i32 {
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("exits in time")
        .unwrap()
}

#[tokio::test]
async fn nginx_serves_its_welcome_page() {
    let nginx = run("docker.io/library/nginx:1.27", &["-g", "daemon off;"]).await;
    let addr = nginx.tcp()[0];
    let index = get(addr, "/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, web::NGINX_INDEX);
    assert!(
        index.headers.contains("server: nginx/"),
        "{}",
        index.headers
    );
    assert!(index.headers.contains("content-type: text/html"));

    let head = curl(&["-I", &format!("http://{addr}/")]).await;
    assert_eq!(head.status, 200);
    assert!(
        head.headers.contains("content-length: 615"),
        "{}",
        head.headers
    );
    assert!(head.body.is_empty());

    let missing = get(addr, "/missing").await;
    assert_eq!(missing.status, 404);
    assert!(missing
        .body
        .contains("<center><h1>404 Not Found</h1></center>"));

    nginx.signal(Signal::Terminate);
    assert_eq!(exit_code(nginx).await, 0);
}

#[tokio::test]
async fn httpd_says_it_works() {
    let httpd = run("httpd:2.4", &[]).await;
    let addr = httpd.tcp()[0];
    let index = get(addr, "/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, "<html><body><h1>It works!</h1></body></html>\n");
    assert!(
        index.headers.contains("server: apache/2.4"),
        "{}",
        index.headers
    );
    assert_eq!(get(addr, "/nope").await.status, 404);
    httpd.signal(Signal::Interrupt);
    assert_eq!(exit_code(httpd).await, 0);
}

#[tokio::test]
async fn netexec_http_endpoints() {
    let agnhost = run(
        "registry.k8s.io/e2e-test-images/agnhost:2.39",
        &["netexec", "--http-port=8080", "--udp-port=8081"],
    )
    .await;
    let http = agnhost.tcp()[0];
    let udp = agnhost.udp()[0];

    assert_eq!(get(http, "/hostname").await.body, hostname());
    assert_eq!(get(http, "/hostName").await.body, hostname());
    let client = get(http, "/clientip").await.body;
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert!(client[10..].parse::<u16>().is_ok(), "{client}");
    let now = get(http, "/").await;
    assert!(now.body.starts_with("NOW: "), "{}", now.body);
    assert!(now.body.contains(" +0000 UTC m=+"), "{}", now.body);

    let echo = get(http, "/echo?msg=hello%20world").await;
    assert_eq!((echo.status, echo.body.as_str()), (200, "hello world"));
    let echo = get(http, "/echo?msg=gone&code=503").await;
    assert_eq!((echo.status, echo.body.as_str()), (503, "gone"));
    let posted = curl(&[
        "-d",
        "msg=from-body",
        &format!("http://{http}/echo?msg=from-query"),
    ])
    .await;
    assert_eq!(posted.body, "from-body");

    let shell = get(
        http,
        "/shell?shellCommand=echo%20hi%3B%20echo%20err%20%3E%262",
    )
    .await;
    assert_eq!(shell.body, r#"{"output":"hi\nerr\n"}"#);
    let failed = get(http, "/shell?cmd=exit%203").await;
    assert_eq!(failed.body, r#"{"error":"exit status 3"}"#);

    let header = get(http, "/header?key=User-Agent").await;
    assert!(header.body.starts_with("curl/"), "{}", header.body);

    // Healthy once the UDP server runs; it starts with the process.
    let mut healthz = get(http, "/healthz").await.status;
    for _ in 0..50 {
        if healthz == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        healthz = get(http, "/healthz").await.status;
    }
    assert_eq!(healthz, 200);
    assert_eq!(get(http, "/readyz").await.body, "ok");

    let redirect = get(http, "/redirect?location=/echo%3Fmsg%3Dfoobar&code=307").await;
    assert_eq!(redirect.status, 307);
    assert!(
        redirect.headers.contains("location: /echo?msg=foobar"),
        "{}",
        redirect.headers
    );

    // /dial, to itself over both protocols, and to a port nobody listens on.
    let dial = get(
        http,
        &format!(
            "/dial?request=hostname&host=127.0.0.1&port={}&protocol=http&tries=2",
            http.port()
        ),
    )
    .await;
    let me = hostname();
    assert_eq!(dial.body, format!(r#"{{"responses":["{me}","{me}"]}}"#));
    let dial = get(
        http,
        &format!(
            "/dial?request=echo%20Hi&host=127.0.0.1&port={}&protocol=udp",
            udp.port()
        ),
    )
    .await;
    assert_eq!(dial.body, r#"{"responses":["hi"]}"#);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let dial = get(
        http,
        &format!("/dial?request=hostname&host=127.0.0.1&port={closed_port}"),
    )
    .await;
    assert!(
        dial.body
            .starts_with(r#"{"errors":["Get \"http://127.0.0.1:"#)
            && dial.body.contains("connection refused"),
        "{}",
        dial.body
    );
    let bad = get(http, "/dial?host=127.0.0.1&port=1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body, "request parameter not specified. <nil>\n");
}

#[tokio::test]
async fn netexec_udp_commands() {
    let agnhost = run("agnhost", &["netexec"]).await;
    let udp = agnhost.udp()[0];
    assert_eq!(udp_ask(udp, "hostname").await, hostname());
    assert_eq!(udp_ask(udp, "echo Hello").await, "hello");
    let client = udp_ask(udp, "clientip").await;
    assert!(client.starts_with("127.0.0.1:"), "{client}");
}

#[tokio::test]
async fn netexec_exit_endpoint_sets_the_exit_code() {
    let agnhost = run("agnhost", &["netexec", "--udp-port=-1"]).await;
    assert!(agnhost.udp().is_empty());
    let http = agnhost.tcp()[0];
    // Without UDP the server never reports healthy, as in agnhost.
    assert_eq!(get(http, "/healthz").await.status, 412);
    // timeout=0: the process exits before answering.
    let reply = get(http, "/exit?code=3").await;
    assert_eq!(reply.status, 0);
    assert_eq!(exit_code(agnhost).await, 3);

    let agnhost = run("agnhost", &["netexec", "--udp-port=-1"]).await;
    let http = agnhost.tcp()[0];
    let bad = get(http, "/exit?code=x").await;
    assert_eq!(
        bad.body,
        "argument 'code' must be an integer [0-127] or empty, got \"x\"\n"
    );
    // With a timeout the request is answered, then the process exits.
    let reply = get(http, "/exit?code=4&timeout=1s").await;
    assert_eq!(reply.status, 200);
    assert_eq!(exit_code(agnhost).await, 4);
}

#[tokio::test]
async fn netexec_terminates_on_sigterm() {
    let agnhost = run("agnhost", &["netexec"]).await;
    agnhost.signal(Signal::Terminate);
    assert_eq!(exit_code(agnhost).await, 0);
}

#[tokio::test]
async fn serve_hostname_over_http_and_udp() {
    let http = run("agnhost", &["serve-hostname"]).await;
    let reply = get(http.tcp()[0], "/anything").await;
    assert_eq!((reply.status, reply.body), (200, hostname()));

    let udp = run("agnhost", &["serve-hostname", "--http=false", "--udp"]).await;
    assert!(udp.tcp().is_empty());
    assert_eq!(udp_ask(udp.udp()[0], "x").await, hostname());

    let tcp = run("agnhost", &["serve-hostname", "--http=false", "--tcp"]).await;
    let mut stream = tokio::net::TcpStream::connect(tcp.tcp()[0]).await.unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
        .await
        .unwrap();
    assert_eq!(answer, hostname());
}

#[tokio::test]
async fn pause_images_wait_for_a_signal() {
    let sandbox = run("registry.k8s.io/pause:3.10", &[]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!sandbox.is_finished(), "pause must wait for a signal");
    assert!(sandbox.tcp().is_empty() && sandbox.udp().is_empty());
    sandbox.signal(Signal::Terminate);
    assert_eq!(exit_code(sandbox).await, 0);

    // agnhost's pause exits 2 on SIGTERM and 1 on SIGINT.
    let agnhost = run("agnhost", &["pause"]).await;
    agnhost.signal(Signal::Terminate);
    assert_eq!(exit_code(agnhost).await, 2);
    let agnhost = run("agnhost", &["pause"]).await;
    agnhost.signal(Signal::Interrupt);
    assert_eq!(exit_code(agnhost).await, 1);
}

#[tokio::test]
async fn refuses_what_it_cannot_run() {
    let none: &[String] = &[];
    let unknown = start("redis:7", none, loopback()).await.unwrap_err();
    assert!(
        unknown.to_string().contains("kinet has: nginx"),
        "{unknown}"
    );
    assert!(start("busybox", none, loopback()).await.is_err());
    let args = vec!["liveness".to_string()];
    assert!(start("agnhost", &args, loopback()).await.is_err());
}
