//! The servers under test, each a child process pinned to one CPU: kinet's DNS server
//! (this binary, `kinet bench dns --serve-api URL`, watching the in-process API server) and
//! Knot DNS serving the same records from a zone file. Both listen on loopback only.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

/// Environment of the kinet child: the API's CA and token.
pub const ENV_CA: &str = "KINET_BENCH_DNS_CA";
pub const ENV_TOKEN: &str = "KINET_BENCH_DNS_TOKEN";

/// A server process; dropping it kills it (by its own PID).
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Takes charge of `child`, which serves at `addr`.
    pub fn new(child: Child, addr: SocketAddr) -> Server {
        Server { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time (user + system) of every thread.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let rest = stat.rsplit(')').next().unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// kinet's DNS server against the API at `url`, on `cpu`.
pub async fn kinet(url: &str, ca_pem: &str, token: &str, cpu: usize) -> Result<Server> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .arg(exe)
        .args(["bench", "dns", "--serve-api", url])
        .env(ENV_CA, ca_pem)
        .env(ENV_TOKEN, token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the kinet DNS child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the kinet DNS child did not report its address")??
        .context("the kinet DNS child exited")?;
    let addr = line
        .strip_prefix("dns ")
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected child output {line:?}"))?;
    Ok(Server { child, addr })
}

/// The child side: serve DNS on a free loopback port, print it, run until killed.
pub async fn serve_child(url: &str) -> Result<()> {
    let ca = std::env::var(ENV_CA).context(ENV_CA)?;
    let token = std::env::var(ENV_TOKEN).context(ENV_TOKEN)?;
    let client = kinet_controllers::client::connect(url, &ca, &token)?;
    let config = kinet_dns::DnsConfig {
        listen: (Ipv4Addr::LOCALHOST, 0).into(),
        metrics: (Ipv4Addr::LOCALHOST, 0).into(),
        ..Default::default()
    };
    let mut server = kinet_dns::start(client, &config).await?;
    println!("dns {}", server.dns_addr());
    server.wait().await?;
    Ok(())
}

/// A free loopback port for UDP and TCP (the kernel's pick; the server binds it next).
fn free_port() -> Result<u16> {
    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = udp.local_addr()?.port();
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    Ok(port)
}

/// Knot DNS serving `zone_text` for `zone` from `dir`, one UDP worker, on `cpu`.
pub async fn knot(dir: &Path, zone: &str, zone_text: &str, cpu: usize) -> Result<Server> {
    std::fs::create_dir_all(dir)?;
    let file = format!("{zone}.zone");
    std::fs::write(dir.join(&file), zone_text)?;
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{d}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         zone:\n  - domain: {zone}\n    storage: \"{d}\"\n    file: \"{file}\"\n"
    );
    let conf_path = dir.join("knot.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("taskset")
        .args(["-c", &cpu.to_string(), "knotd", "-c"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting knotd (apt-get install knot)")?;
    Ok(Server {
        child,
        addr: (Ipv4Addr::LOCALHOST, port).into(),
    })
}

/// A minimal A query: header with RD, one question.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// `(rcode, answer count)` of an A query for `name`, or None on timeout.
pub async fn ask(server: SocketAddr, name: &str) -> Option<(u8, u16)> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    let id = rand::random::<u16>();
    sock.send_to(&query(id, name), server).await.ok()?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n >= 12 && buf[..2] == id.to_be_bytes())
        .then(|| (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])))
}

/// Waits until `server` answers `name` with at least one record.
pub async fn wait_answers(server: &mut Server, name: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Some((0, n)) = ask(server.addr, name).await {
            if n > 0 {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("the server exited ({status})");
        }
        if Instant::now() > deadline {
            bail!("{} did not answer {name} within {within:?}", server.addr);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_question() {
        let q = query(0x1234, "a.bc.");
        assert_eq!(
            q,
            [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1]
        );
    }
}
