//! Durability under SIGKILL: every write the store acknowledged must be there after reopening.
//!
//! The test re-executes its own binary with `KINET_STORE_CRASH_CHILD` set; in that mode it writes
//! forever from several tasks and prints `ACK <key> <rv>` after each acknowledged write.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinet_store::{Mutation, Store};
use serde_json::json;

const CHILD_ENV: &str = "KINET_STORE_CRASH_CHILD";
const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";
const KILL_AFTER: usize = 400;

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        let (key, rv) = rest.split_once(' ').unwrap();
        acked.push((key.to_string(), rv.parse::<u64>().unwrap()));
        if acked.len() == KILL_AFTER {
            proc.kill().unwrap();
            killed = true;
            break;
        }
    }
    assert!(
        killed,
        "child stopped after {} acknowledged writes",
        acked.len()
    );
    let status = proc.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "child died of SIGKILL, not on its own"
    );
    // Lines already in the pipe were acknowledged before the kill, too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some((key, rv)) = line.strip_prefix("ACK ").and_then(|r| r.split_once(' ')) {
            acked.push((key.to_string(), rv.parse().unwrap()));
        }
    }

    let store = Store::open(&path).unwrap();
    let max_rv = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    assert!(store.current_rv() >= max_rv, "rv went backwards");
    for (key, rv) in &acked {
        let stored = store
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(stored.rv, *rv, "{key}");
    }
    // Whatever else survived is whole: every object parses and carries its rv.
    for item in store.list("k/").0 {
        assert_eq!(
            item.value["metadata"]["resourceVersion"],
            item.rv.to_string()
        );
    }
}

/// Child mode: write until killed (or a minute passes, should the parent vanish).
fn child(path: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let key = format!("k/{t}/{i}");
                        let out = store
                            .write(&key, move |_| Ok(Mutation::Put(json!({"t": t, "i": i}))))
                            .await
                            .unwrap();
                        let mut stdout = std::io::stdout().lock();
                        writeln!(stdout, "ACK {key} {}", out.rv).unwrap();
                        stdout.flush().unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}
