//! A throwaway etcd cluster on loopback: Debian's `etcd` binary, one process per member on free
//! ports, data on tmpfs in a temp folder. Dropping it kills the members (by PID) and removes the
//! folder.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long members get to elect a leader and answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Member {
    client_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The folder the members' temp folder is made in: tmpfs when there is one, as etcd fsyncs
/// every commit.
pub fn data_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => shm.to_path_buf(),
        false => std::env::temp_dir(),
    }
}

impl EtcdCluster {
    /// Starts `size` members and waits until each reports itself healthy.
    pub fn start(size: usize) -> anyhow::Result<EtcdCluster> {
        let dir = tempfile::tempdir_in(data_parent())?;
        let ports = (0..size)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            dir,
        };
        for (i, (client, peer)) in ports.into_iter().enumerate() {
            let log = std::fs::File::create(cluster.dir.path().join(format!("m{i}.log")))?;
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(cluster.dir.path().join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-token", &token])
                .args(["--initial-cluster-state", "new"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting etcd (Debian package etcd-server)")?;
            cluster.members.push(Member {
                client_port: client,
                child: Some(child),
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for i in 0..size {
            while !cluster.healthy(i) {
                if Instant::now() > deadline {
                    bail!("etcd member m{i} is not healthy: {}", cluster.log(i));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// `etcd://127.0.0.1:p1,127.0.0.1:p2,…`, for `kinet up --datastore`.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// `127.0.0.1:port` of each member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// SIGKILLs member `i` (the others keep quorum in a cluster of three).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What member `i` logged.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("m{i}.log"))).unwrap_or_default()
    }

    /// The keys under `prefix`, read through etcd's own JSON gateway (`/v3/kv/range`) of the
    /// first member still running.
    pub fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        use base64::prelude::{Engine, BASE64_STANDARD};
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let request = serde_json::json!({
            "key": BASE64_STANDARD.encode(prefix),
            "range_end": BASE64_STANDARD.encode(end),
            "keys_only": true,
        });
        let live = self
            .members
            .iter()
            .position(|m| m.child.is_some())
            .context("every member was killed")?;
        let body = self.http(live, "POST", "/v3/kv/range", &request.to_string())?;
        let reply: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("etcd's range answer: {body}"))?;
        let kvs = reply["kvs"].as_array().cloned().unwrap_or_default();
        kvs.iter()
            .map(|kv| {
                let key = BASE64_STANDARD.decode(kv["key"].as_str().unwrap_or_default())?;
                Ok(String::from_utf8(key)?)
            })
            .collect()
    }

    /// Member `i` answers `/health` with `"health":"true"` (it has a leader).
    fn healthy(&self, i: usize) -> bool {
        self.http(i, "GET", "/health", "")
            .is_ok_and(|body| body.contains(r#""health":"true""#))
    }

    /// One HTTP/1.0 request to member `i`'s client port; the answer's body.
    fn http(&self, i: usize, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.members[i].client_port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        match answer.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                Ok(body.to_string())
            }
            _ => bail!("etcd answered {method} {path} with {answer:?}"),
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
