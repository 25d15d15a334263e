//! Counters the sync loop keeps, shared with whoever serves or logs them.
//! Plain atomics: read at any time without a lock, written by one loop.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live proxy metrics. Durations are stored in microseconds.
#[derive(Debug, Default)]
pub struct Metrics {
    syncs: AtomicU64,
    sync_failures: AtomicU64,
    skipped_unchanged: AtomicU64,
    last_sync_micros: AtomicU64,
    last_render_micros: AtomicU64,
    last_programming_latency_micros: AtomicU64,
    max_programming_latency_micros: AtomicU64,
    udp_flows_flushed: AtomicU64,
    programming: ProgrammingHistogram,
}

/// kube-proxy's `network_programming_duration_seconds`: from the change that triggered an
/// EndpointSlice write (its `endpoints.kubernetes.io/last-change-trigger-time`) to the rules
/// being in the kernel, with kube-proxy's buckets.
#[derive(Debug)]
struct ProgrammingHistogram {
    /// Observations per bucket (not cumulative), the last one past every bound.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// 0.25 s and 0.5 s, then every second to 59 s, every 5 s to 115 s, every 30 s to 300 s.
fn programming_bounds() -> Vec<f64> {
    let mut b = vec![0.25, 0.5];
    b.extend((1..60).map(f64::from));
    b.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    b.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    b
}

impl Default for ProgrammingHistogram {
    fn default() -> Self {
        ProgrammingHistogram {
            counts: (0..=programming_bounds().len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl ProgrammingHistogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = programming_bounds()
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.counts.len() - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros(d), Ordering::Relaxed);
    }

    fn prometheus_text(&self, out: &mut String) {
        let name = "kubeproxy_network_programming_duration_seconds";
        let _ = writeln!(out, "# HELP {name} In Cluster Network Programming Latency in seconds\n# TYPE {name} histogram");
        let mut cumulative = 0;
        let bounds = programming_bounds();
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// A copy of the metrics at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Transactions loaded successfully.
    pub syncs: u64,
    /// Transactions nft rejected or could not run.
    pub sync_failures: u64,
    /// Syncs with nothing to load (same ruleset as last time).
    pub skipped_unchanged: u64,
    /// How long the last `nft -f` took.
    pub last_sync: Duration,
    /// How long the last render took.
    pub last_render: Duration,
    /// From the first watch event a sync covered to its rules being loaded.
    pub last_programming_latency: Duration,
    pub max_programming_latency: Duration,
    /// UDP endpoints whose conntrack entries were flushed.
    pub udp_flows_flushed: u64,
}

/// A duration in whole microseconds, as the metrics' atomics keep them (saturating).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Metrics {
    pub(crate) fn record_sync(&self, render: Duration, sync: Duration, flushed: usize) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.last_render_micros
            .store(micros(render), Ordering::Relaxed);
        self.last_sync_micros.store(micros(sync), Ordering::Relaxed);
        self.udp_flows_flushed
            .fetch_add(flushed as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_unchanged(&self) {
        self.skipped_unchanged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        self.sync_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// One EndpointSlice change programmed, `d` after the change that triggered it.
    pub(crate) fn record_network_programming(&self, d: Duration) {
        self.programming.observe(d);
    }

    pub(crate) fn record_programming_latency(&self, d: Duration) {
        self.last_programming_latency_micros
            .store(micros(d), Ordering::Relaxed);
        self.max_programming_latency_micros
            .fetch_max(micros(d), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let d = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        MetricsSnapshot {
            syncs: self.syncs.load(Ordering::Relaxed),
            sync_failures: self.sync_failures.load(Ordering::Relaxed),
            skipped_unchanged: self.skipped_unchanged.load(Ordering::Relaxed),
            last_sync: d(&self.last_sync_micros),
            last_render: d(&self.last_render_micros),
            last_programming_latency: d(&self.last_programming_latency_micros),
            max_programming_latency: d(&self.max_programming_latency_micros),
            udp_flows_flushed: self.udp_flows_flushed.load(Ordering::Relaxed),
        }
    }
}

/// Anything with metrics to serve beside the proxy's (the node's NetworkPolicy enforcer).
pub trait MetricsSource: Send + Sync {
    /// Prometheus text exposition.
    fn prometheus_text(&self) -> String;
}

impl MetricsSource for Metrics {
    fn prometheus_text(&self) -> String {
        let mut text = self.snapshot().prometheus_text();
        self.programming.prometheus_text(&mut text);
        text
    }
}

/// One metric in Prometheus text exposition: help, type and value.
pub fn metric_line(out: &mut String, name: &str, kind: &str, help: &str, value: String) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Serves the metrics of every source in Prometheus' text format on every path (kube-proxy's
/// `:10249/metrics`).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    sources: Vec<std::sync::Arc<dyn MetricsSource>>,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let body: String = sources.iter().map(|s| s.prometheus_text()).collect();
        tokio::spawn(async move {
            crate::http::answer(conn, 200, "text/plain; version=0.0.4", "", &body).await
        });
    }
}

impl MetricsSnapshot {
    /// Prometheus text exposition, with kube-proxy-like names.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            metric_line(&mut out, name, kind, help, value)
        };
        line(
            "kinet_proxy_sync_total",
            "counter",
            "Rule transactions loaded.",
            self.syncs.to_string(),
        );
        line(
            "kinet_proxy_sync_failures_total",
            "counter",
            "Rule transactions that failed.",
            self.sync_failures.to_string(),
        );
        line(
            "kinet_proxy_sync_unchanged_total",
            "counter",
            "Syncs that found nothing to load.",
            self.skipped_unchanged.to_string(),
        );
        line(
            "kinet_proxy_last_sync_duration_seconds",
            "gauge",
            "Duration of the last nft transaction.",
            self.last_sync.as_secs_f64().to_string(),
        );
        line(
            "kinet_proxy_last_network_programming_seconds",
            "gauge",
            "From a watch event to its rules being loaded, last sync.",
            self.last_programming_latency.as_secs_f64().to_string(),
        );
        line(
            "kinet_proxy_udp_conntrack_flushed_total",
            "counter",
            "Removed UDP endpoints whose conntrack entries were deleted.",
            self.udp_flows_flushed.to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_exposes() {
        let m = Metrics::default();
        m.record_sync(Duration::from_micros(50), Duration::from_millis(3), 2);
        m.record_unchanged();
        m.record_failure();
        m.record_programming_latency(Duration::from_millis(12));
        m.record_programming_latency(Duration::from_millis(4));
        let s = m.snapshot();
        assert_eq!(s.syncs, 1);
        assert_eq!(s.sync_failures, 1);
        assert_eq!(s.skipped_unchanged, 1);
        assert_eq!(s.last_sync, Duration::from_millis(3));
        assert_eq!(s.last_programming_latency, Duration::from_millis(4));
        assert_eq!(s.max_programming_latency, Duration::from_millis(12));
        assert_eq!(s.udp_flows_flushed, 2);
        let text = s.prometheus_text();
        assert!(text.contains("kinet_proxy_sync_total 1\n"), "{text}");
        assert!(
            text.contains("kinet_proxy_last_sync_duration_seconds 0.003\n"),
            "{text}"
        );
    }

    #[test]
    fn network_programming_is_a_histogram_with_kube_proxys_buckets() {
        let m = Metrics::default();
        m.record_network_programming(Duration::from_millis(300));
        m.record_network_programming(Duration::from_millis(1500));
        m.record_network_programming(Duration::from_secs(400));
        let text = MetricsSource::prometheus_text(&m);
        let name = "kubeproxy_network_programming_duration_seconds";
        for line in [
            format!("{name}_bucket{{le=\"0.25\"}} 0\n"),
            format!("{name}_bucket{{le=\"0.5\"}} 1\n"),
            format!("{name}_bucket{{le=\"2\"}} 2\n"),
            format!("{name}_bucket{{le=\"300\"}} 2\n"),
            format!("{name}_bucket{{le=\"+Inf\"}} 3\n"),
            format!("{name}_sum 401.8\n{name}_count 3\n"),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert_eq!(programming_bounds().len(), 80);
    }
}
