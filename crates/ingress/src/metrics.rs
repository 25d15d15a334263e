//! Prometheus metrics per Ingress and backend: requests by status code and a latency
//! histogram, in the text exposition format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
/// Status codes are counted from 100 to 599.
const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// One (Ingress, backend)'s counters: atomics, so requests on every thread count without a
/// lock.
struct Series {
    by_code: [AtomicU64; CODES],
    /// Per bucket (not cumulative: the exposition adds them up), then one for "+Inf".
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Series {
    fn record(&self, code: u16, took: Duration) {
        if let Some(n) = self.by_code.get(code.wrapping_sub(FIRST_CODE) as usize) {
            n.fetch_add(1, Relaxed);
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|le| secs <= *le);
        self.buckets[bucket.unwrap_or(BUCKETS.len())].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros().try_into().unwrap_or(u64::MAX), Relaxed);
    }
}

/// `(ingress, backend)`.
type SeriesKey = (Arc<str>, Arc<str>);
/// One Ingress's series, by backend.
type ByBackend = HashMap<Arc<str>, Arc<Series>>;

/// The controller's metrics.
#[derive(Default)]
pub struct Metrics {
    /// By Ingress, then backend; requests no rule matched have empty labels. Written only
    /// when a pair answers its first request.
    series: RwLock<HashMap<Arc<str>, ByBackend>>,
    connect_errors: Mutex<BTreeMap<String, u64>>,
    access_log_dropped: AtomicU64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, ingress: &Arc<str>, backend: &Arc<str>, code: u16, took: Duration) {
        let found = {
            let all = self.series.read().unwrap_or_else(|p| p.into_inner());
            all.get(ingress).and_then(|b| b.get(backend)).cloned()
        };
        let series = found.unwrap_or_else(|| {
            let mut all = self.series.write().unwrap_or_else(|p| p.into_inner());
            all.entry(ingress.clone())
                .or_default()
                .entry(backend.clone())
                .or_default()
                .clone()
        });
        series.record(code, took);
    }

    /// Counts a failed connection to one of `backend`'s endpoints.
    pub fn connect_error(&self, backend: &str) {
        let mut all = self
            .connect_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *all.entry(backend.to_string()).or_default() += 1;
    }

    /// Counts an access log entry dropped because the log writer was behind.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.fetch_add(1, Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let all: Vec<(SeriesKey, Arc<Series>)> = {
            let guard = self.series.read().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<_> = guard
                .iter()
                .flat_map(|(ing, by_backend)| {
                    by_backend
                        .iter()
                        .map(|(be, s)| ((ing.clone(), be.clone()), s.clone()))
                })
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        let labels = |(ing, be): &SeriesKey| {
            format!("ingress=\"{}\",backend=\"{}\"", escape(ing), escape(be))
        };
        out.push_str("# HELP kinet_ingress_requests_total Requests answered, by Ingress, backend and status code.\n# TYPE kinet_ingress_requests_total counter\n");
        for (key, s) in &all {
            let labels = labels(key);
            for (i, n) in s.by_code.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let code = i + usize::from(FIRST_CODE);
                    let _ = writeln!(
                        out,
                        "kinet_ingress_requests_total{{{labels},code=\"{code}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP kinet_ingress_request_duration_seconds Time to the response headers.\n# TYPE kinet_ingress_request_duration_seconds histogram\n");
        for (key, s) in &all {
            let labels = labels(key);
            let mut count = 0;
            for (i, n) in s.buckets.iter().enumerate() {
                count += n.load(Relaxed);
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
                let _ = writeln!(
                    out,
                    "kinet_ingress_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
                );
            }
            let sum = s.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "kinet_ingress_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "kinet_ingress_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        out.push_str("# HELP kinet_ingress_upstream_connect_errors_total Failed connections to endpoints, by backend.\n# TYPE kinet_ingress_upstream_connect_errors_total counter\n");
        let errors = self
            .connect_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (be, n) in errors.iter() {
            let _ = writeln!(
                out,
                "kinet_ingress_upstream_connect_errors_total{{backend=\"{}\"}} {n}",
                escape(be)
            );
        }
        let _ = write!(
            out,
            "# HELP kinet_ingress_access_log_dropped_total Access log entries dropped because the log writer fell behind.\n# TYPE kinet_ingress_access_log_dropped_total counter\nkinet_ingress_access_log_dropped_total {}\n",
            self.access_log_dropped.load(Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let (ing, be): (Arc<str>, Arc<str>) = ("default/web".into(), "default/nginx:80".into());
        for (code, ms) in [(200, 3), (200, 30), (503, 0)] {
            m.request(&ing, &be, code, Duration::from_millis(ms));
        }
        m.connect_error("default/nginx:80");
        m.access_log_dropped();
        let text = m.render();
        for line in [
            "kinet_ingress_requests_total{ingress=\"default/web\",backend=\"default/nginx:80\",code=\"200\"} 2",
            "kinet_ingress_requests_total{ingress=\"default/web\",backend=\"default/nginx:80\",code=\"503\"} 1",
            "kinet_ingress_request_duration_seconds_bucket{ingress=\"default/web\",backend=\"default/nginx:80\",le=\"0.005\"} 2",
            "kinet_ingress_request_duration_seconds_bucket{ingress=\"default/web\",backend=\"default/nginx:80\",le=\"+Inf\"} 3",
            "kinet_ingress_request_duration_seconds_count{ingress=\"default/web\",backend=\"default/nginx:80\"} 3",
            "kinet_ingress_upstream_connect_errors_total{backend=\"default/nginx:80\"} 1",
            "kinet_ingress_access_log_dropped_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
