//! The proxy's own health, served as kube-proxy serves it on port 10256
//! (`pkg/proxy/healthcheck/proxy_health.go`):
//!
//! - `/livez`: 200 unless a change has waited for a sync longer than the timeout (kube-proxy's
//!   `2 * syncPeriod`, here twice the resync period); 503 when a sync is overdue.
//! - `/healthz`: the same, and also 503 when this node is going away (being deleted, or
//!   tainted `ToBeDeletedByClusterAutoscaler`), so a load balancer stops sending to it.
//!
//! Both answer `{"lastUpdated": …,"currentTime": …, "nodeEligible": …}` with Go's time format;
//! while healthy `lastUpdated` is the current time, as kube-proxy keeps it for old clients.
//! [`Health`] and [`answer`] are pure; [`ProxyHealthz`] records what the sync loop does.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kinet_types::gotime;
use kinet_types::wellknown::TO_BE_DELETED_TAINT;

/// What the sync loop has done, as the health answers need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The last successful sync.
    pub last_updated: Option<SystemTime>,
    /// The oldest change no successful sync has covered yet.
    pub oldest_queued: Option<SystemTime>,
    /// Whether this node is staying (not being deleted).
    pub node_eligible: bool,
    /// How long a change may wait for its sync before the proxy is unhealthy.
    pub timeout: Duration,
}

impl Health {
    /// Nothing synced or queued yet: healthy while starting, as kube-proxy is.
    pub fn new(timeout: Duration) -> Health {
        Health {
            last_updated: None,
            oldest_queued: None,
            node_eligible: true,
            timeout,
        }
    }

    /// A change came in at `at`.
    pub fn queued(&mut self, at: SystemTime) {
        self.oldest_queued.get_or_insert(at);
    }

    /// A sync succeeded at `at`: nothing is waiting any more (kube-proxy's `Updated`; a change
    /// that came in during the sync has woken the loop for another).
    pub fn updated(&mut self, at: SystemTime) {
        self.last_updated = Some(at);
        self.oldest_queued = None;
    }

    /// Whether no change has waited for its sync for the timeout or longer.
    pub fn synced_in_time(&self, now: SystemTime) -> bool {
        self.oldest_queued
            .is_none_or(|q| now.duration_since(q).unwrap_or_default() < self.timeout)
    }
}

/// The status code and JSON body of `path` (`/healthz` or `/livez`); `None` for any other.
pub fn answer(health: &Health, path: &str, now: SystemTime) -> Option<(u16, String)> {
    let healthy = match path {
        "/healthz" => health.synced_in_time(now) && health.node_eligible,
        "/livez" => health.synced_in_time(now),
        _ => return None,
    };
    let last_updated = if healthy {
        Some(now)
    } else {
        health.last_updated
    };
    let body = format!(
        r#"{{"lastUpdated": "{}","currentTime": "{}", "nodeEligible": {}}}"#,
        go_time(last_updated),
        go_time(Some(now)),
        health.node_eligible
    );
    Some((if healthy { 200 } else { 503 }, body))
}

/// Go's `time.Time.String()` in UTC; the zero time for never.
fn go_time(t: Option<SystemTime>) -> String {
    t.map_or_else(gotime::go_zero_time, |t| gotime::go_time(t.into()))
}

/// Whether `node` is staying: not being deleted and not marked for removal by the autoscaler.
/// A node not (yet) seen is eligible.
pub fn node_eligible(node: Option<&Node>) -> bool {
    let Some(node) = node else { return true };
    let deleting = node.metadata.deletion_timestamp.is_some();
    let marked = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
    !deleting && !marked
}

/// The live record the sync loop writes and the healthz server reads; cheap to share.
#[derive(Debug)]
pub struct ProxyHealthz {
    health: Mutex<Health>,
}

impl Default for ProxyHealthz {
    fn default() -> Self {
        ProxyHealthz::new(Duration::from_secs(60))
    }
}

impl ProxyHealthz {
    pub fn new(timeout: Duration) -> ProxyHealthz {
        ProxyHealthz {
            health: Mutex::new(Health::new(timeout)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Health) -> T) -> T {
        f(&mut self.health.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn set_timeout(&self, timeout: Duration) {
        self.with(|h| h.timeout = timeout);
    }

    pub(crate) fn queued(&self) {
        self.with(|h| h.queued(SystemTime::now()));
    }

    pub(crate) fn updated(&self) {
        self.with(|h| h.updated(SystemTime::now()));
    }

    pub(crate) fn set_node_eligible(&self, eligible: bool) {
        self.with(|h| h.node_eligible = eligible);
    }

    /// A copy of the record now.
    pub fn health(&self) -> Health {
        self.with(|h| *h)
    }
}

/// Serves `/healthz` and `/livez` (404 for anything else) until the task is dropped.
pub async fn serve_healthz(listener: tokio::net::TcpListener, healthz: Arc<ProxyHealthz>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let healthz = healthz.clone();
        tokio::spawn(async move {
            let path = crate::http::request_path(&mut conn).await;
            let (code, body) = answer(&healthz.health(), &path, SystemTime::now())
                .unwrap_or((404, "404 page not found\n".into()));
            crate::http::reply(
                conn,
                code,
                "application/json",
                "X-Content-Type-Options: nosniff\r\n",
                &body,
            )
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    const MIN: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn healthy_while_starting_and_while_syncs_keep_up() {
        let mut h = Health::new(MIN);
        assert_eq!(answer(&h, "/healthz", at(0)).unwrap().0, 200);
        h.queued(at(1));
        assert_eq!(
            answer(&h, "/healthz", at(60)).unwrap().0,
            200,
            "59 s pending"
        );
        h.updated(at(2));
        h.queued(at(100));
        assert_eq!(answer(&h, "/livez", at(120)).unwrap().0, 200);
    }

    #[test]
    fn an_overdue_sync_is_503_with_the_last_update() {
        let mut h = Health::new(MIN);
        h.updated(UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000));
        h.queued(at(10));
        h.queued(at(50));
        let (code, body) = answer(&h, "/livez", at(70)).unwrap();
        assert_eq!(code, 503, "the oldest change waited 60 s");
        let got: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            got,
            json!({"lastUpdated": "2023-11-14 22:13:20.12 +0000 UTC",
                   "currentTime": "2023-11-14 22:14:30 +0000 UTC", "nodeEligible": true})
        );
        h.updated(at(71));
        assert_eq!(answer(&h, "/healthz", at(72)).unwrap().0, 200);
    }

    #[test]
    fn a_node_going_away_fails_healthz_but_not_livez() {
        let mut h = Health::new(MIN);
        h.node_eligible = false;
        let (code, body) = answer(&h, "/healthz", at(0)).unwrap();
        assert_eq!(code, 503);
        assert!(
            body.contains(r#""lastUpdated": "0001-01-01 00:00:00 +0000 UTC""#),
            "{body}"
        );
        assert_eq!(answer(&h, "/livez", at(0)).unwrap().0, 200);
        assert_eq!(answer(&h, "/metrics", at(0)), None);
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: node\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out.split("\r\n\r\n").nth(1).unwrap().to_string())
    }

    #[tokio::test]
    async fn the_server_answers_what_the_sync_loop_recorded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // No time at all for a sync: any change waiting makes it overdue.
        let healthz = Arc::new(ProxyHealthz::new(Duration::ZERO));
        let server = tokio::spawn(serve_healthz(listener, healthz.clone()));
        let (code, body) = get(addr, "/healthz?verbose").await;
        assert_eq!(code, 200, "{body}");
        assert!(body.ends_with(r#", "nodeEligible": true}"#), "{body}");
        healthz.queued();
        assert_eq!(get(addr, "/healthz").await.0, 503);
        assert_eq!(get(addr, "/livez").await.0, 503);
        healthz.updated();
        assert_eq!(get(addr, "/livez").await.0, 200);
        healthz.set_node_eligible(false);
        assert_eq!(get(addr, "/healthz").await.0, 503);
        assert_eq!(get(addr, "/livez").await.0, 200);
        assert_eq!(get(addr, "/metrics").await.0, 404);
        server.abort();
    }

    #[test]
    fn deleted_or_autoscaler_marked_nodes_are_not_eligible() {
        let node = |v: serde_json::Value| -> Node { serde_json::from_value(v).unwrap() };
        assert!(node_eligible(None));
        assert!(node_eligible(Some(&node(
            json!({"metadata": {"name": "a"}})
        ))));
        assert!(!node_eligible(Some(&node(json!({
            "metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z"}
        })))));
        assert!(!node_eligible(Some(&node(json!({
            "metadata": {"name": "a"},
            "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}
        })))));
    }
}
