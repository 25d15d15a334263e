//! Shared helpers: `dig` against a server on loopback, HTTP GET, a served view.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use kinet_dns::DnsConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Loopback only, with free ports.
pub fn local_config() -> DnsConfig {
    DnsConfig {
        listen: (Ipv4Addr::LOCALHOST, 0).into(),
        metrics: (Ipv4Addr::LOCALHOST, 0).into(),
        ..DnsConfig::default()
    }
}

/// What `dig` printed, picked apart.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    /// The rdata of each answer record (everything after the type column).
    pub answers: Vec<String>,
    pub raw: String,
}

impl Dig {
    pub fn sorted_answers(&self) -> Vec<String> {
        let mut a = self.answers.clone();
        a.sort();
        a
    }
}

/// `dig @addr -p port <args>` with one try and a short timeout.
pub async fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+tries=1", "+time=3"])
        .args(args)
        .output()
        .await
        .expect("dig runs");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    parse(raw)
}

fn parse(raw: String) -> Dig {
    let mut status = String::new();
    let mut flags = Vec::new();
    let mut answers = Vec::new();
    let mut in_answer = false;
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            status = rest.split(',').next().unwrap_or_default().to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
        if line.starts_with(";; ANSWER SECTION:") {
            in_answer = true;
            continue;
        }
        if in_answer {
            if line.trim().is_empty() || line.starts_with(";;") {
                in_answer = false;
                continue;
            }
            // name ttl class type rdata...
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 5 {
                answers.push(cols[4..].join(" "));
            }
        }
    }
    Dig {
        status,
        flags,
        answers,
        raw,
    }
}

/// Ask until `pred` holds or `deadline` passes; returns the last answer.
pub async fn dig_until(
    server: SocketAddr,
    args: &[&str],
    deadline: Duration,
    pred: impl Fn(&Dig) -> bool,
) -> (Dig, Duration) {
    let started = Instant::now();
    loop {
        let d = dig(server, args).await;
        if pred(&d) || started.elapsed() > deadline {
            return (d, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A plain HTTP/1.1 GET; returns (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (code, body)
}

/// The value of one exact series in a metrics text, or 0 when absent.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}
