//! Prometheus metrics per Ingress and backend: requests by status code and a latency
//! histogram, in the text exposition format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    by_code: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// `(ingress, backend)`.
type SeriesKey = (Arc<str>, Arc<str>);

/// The controller's metrics.
#[derive(Default)]
pub struct Metrics {
    /// By (ingress, backend); requests no rule matched have empty labels.
    series: Mutex<HashMap<SeriesKey, Series>>,
    connect_errors: Mutex<BTreeMap<String, u64>>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, ingress: &Arc<str>, backend: &Arc<str>, code: u16, took: Duration) {
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ingress.clone(), backend.clone());
        let s = all.entry(key).or_default();
        *s.by_code.entry(code).or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
        s.count += 1;
        s.sum += secs;
    }

    /// Counts a failed connection to one of `backend`'s endpoints.
    pub fn connect_error(&self, backend: &str) {
        let mut all = self
            .connect_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *all.entry(backend.to_string()).or_default() += 1;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let guard = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = guard.iter().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str("# HELP kinet_ingress_requests_total Requests answered, by Ingress, backend and status code.\n# TYPE kinet_ingress_requests_total counter\n");
        for ((ing, be), s) in &all {
            for (code, n) in &s.by_code {
                let _ = writeln!(
                    out,
                    "kinet_ingress_requests_total{{ingress=\"{}\",backend=\"{}\",code=\"{code}\"}} {n}",
                    escape(ing),
                    escape(be)
                );
            }
        }
        out.push_str("# HELP kinet_ingress_request_duration_seconds Time to the response headers.\n# TYPE kinet_ingress_request_duration_seconds histogram\n");
        for ((ing, be), s) in &all {
            let labels = format!("ingress=\"{}\",backend=\"{}\"", escape(ing), escape(be));
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "kinet_ingress_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "kinet_ingress_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "kinet_ingress_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "kinet_ingress_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        drop(all);
        drop(guard);
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
        let text = m.render();
        for line in [
            "kinet_ingress_requests_total{ingress=\"default/web\",backend=\"default/nginx:80\",code=\"200\"} 2",
            "kinet_ingress_requests_total{ingress=\"default/web\",backend=\"default/nginx:80\",code=\"503\"} 1",
            "kinet_ingress_request_duration_seconds_bucket{ingress=\"default/web\",backend=\"default/nginx:80\",le=\"0.005\"} 2",
            "kinet_ingress_request_duration_seconds_bucket{ingress=\"default/web\",backend=\"default/nginx:80\",le=\"+Inf\"} 3",
            "kinet_ingress_request_duration_seconds_count{ingress=\"default/web\",backend=\"default/nginx:80\"} 3",
            "kinet_ingress_upstream_connect_errors_total{backend=\"default/nginx:80\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
