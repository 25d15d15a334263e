//! Counters kept in fixed arrays of atomics, so a query records itself with a
//! few relaxed adds and no locks or allocation; rendered in the Prometheus
//! text format on scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kinet_dns_zone::hickory_proto::op::ResponseCode;
use kinet_dns_zone::hickory_proto::rr::RecordType;

/// Transport a query came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

const PROTOS: [&str; 2] = ["udp", "tcp"];
/// Query types with their own label (as CoreDNS's monitored types); the rest are "other".
const TYPES: [&str; 12] = [
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "ANY", "HTTPS", "other",
];
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
/// Upper bounds in seconds: 0.25 ms doubling 16 times, as CoreDNS's request histogram.
const BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

fn type_index(t: RecordType) -> usize {
    match t {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::CNAME => 2,
        RecordType::MX => 3,
        RecordType::NS => 4,
        RecordType::PTR => 5,
        RecordType::SOA => 6,
        RecordType::SRV => 7,
        RecordType::TXT => 8,
        RecordType::ANY => 9,
        RecordType::HTTPS => 10,
        _ => 11,
    }
}

fn rcode_index(r: ResponseCode) -> usize {
    match r {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

/// All server metrics; shared by reference between the listeners.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; TYPES.len()]; PROTOS.len()],
    responses: [AtomicU64; RCODES.len()],
    /// Cumulative per bucket is computed on render; these are per-bucket counts
    /// with a final +Inf slot.
    duration: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_us: AtomicU64,
    truncated: AtomicU64,
    forwards: AtomicU64,
    forward_errors: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_entries: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One query received (`qtype` is `None` when it did not decode).
    pub fn request(&self, proto: Proto, qtype: Option<RecordType>) {
        let t = qtype.map_or(TYPES.len() - 1, type_index);
        self.requests[proto as usize][t].fetch_add(1, Relaxed);
    }

    /// One response sent, and how long the query took.
    pub fn response(&self, rcode: ResponseCode, truncated: bool, took: Duration) {
        self.responses[rcode_index(rcode)].fetch_add(1, Relaxed);
        if truncated {
            self.truncated.fetch_add(1, Relaxed);
        }
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.duration[slot].fetch_add(1, Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_us.fetch_add(us, Relaxed);
    }

    pub fn forwarded(&self, ok: bool) {
        self.forwards.fetch_add(1, Relaxed);
        if !ok {
            self.forward_errors.fetch_add(1, Relaxed);
        }
    }

    pub fn cache_lookup(&self, hit: bool) {
        let c = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn set_cache_entries(&self, n: usize) {
        self.cache_entries.store(n as u64, Relaxed);
    }

    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Relaxed)
    }

    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Relaxed)
    }

    /// Total responses with `rcode` so far.
    pub fn responses(&self, rcode: ResponseCode) -> u64 {
        self.responses[rcode_index(rcode)].load(Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4). Series that never
    /// counted are left out, as client libraries do for unseen label sets.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        head(
            &mut out,
            "kinet_dns_requests_total",
            "counter",
            "DNS queries received, by transport and query type.",
        );
        for (p, row) in self.requests.iter().enumerate() {
            for (t, c) in row.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "kinet_dns_requests_total{{proto=\"{}\",type=\"{}\"}} {n}",
                        PROTOS[p], TYPES[t]
                    );
                }
            }
        }
        head(
            &mut out,
            "kinet_dns_responses_total",
            "counter",
            "DNS responses sent, by response code.",
        );
        for (r, c) in self.responses.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "kinet_dns_responses_total{{rcode=\"{}\"}} {n}",
                    RCODES[r]
                );
            }
        }
        self.render_histogram(&mut out);
        let plain = [
            (
                "kinet_dns_truncated_responses_total",
                "counter",
                "UDP responses sent with TC set.",
                &self.truncated,
            ),
            (
                "kinet_dns_forward_requests_total",
                "counter",
                "Queries sent to an upstream (cache misses outside the zone).",
                &self.forwards,
            ),
            (
                "kinet_dns_forward_errors_total",
                "counter",
                "Forwarded queries no upstream answered.",
                &self.forward_errors,
            ),
            (
                "kinet_dns_cache_hits_total",
                "counter",
                "Forwarded names answered from the cache.",
                &self.cache_hits,
            ),
            (
                "kinet_dns_cache_misses_total",
                "counter",
                "Forwarded names not in the cache.",
                &self.cache_misses,
            ),
            (
                "kinet_dns_cache_entries",
                "gauge",
                "Responses held in the forward cache.",
                &self.cache_entries,
            ),
        ];
        for (name, kind, help, c) in plain {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", c.load(Relaxed));
        }
        out
    }

    fn render_histogram(&self, out: &mut String) {
        let name = "kinet_dns_request_duration_seconds";
        head(
            out,
            name,
            "histogram",
            "Time from receiving a query to sending its answer.",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.duration[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.duration[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.duration_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters_and_cumulative_histogram() {
        let m = Metrics::new();
        m.request(Proto::Udp, Some(RecordType::A));
        m.request(Proto::Udp, Some(RecordType::A));
        m.request(Proto::Tcp, Some(RecordType::SRV));
        m.request(Proto::Udp, Some(RecordType::NULL));
        m.response(ResponseCode::NoError, false, Duration::from_micros(100));
        m.response(ResponseCode::NXDomain, true, Duration::from_millis(3));
        m.response(ResponseCode::Refused, false, Duration::from_secs(20));
        m.cache_lookup(true);
        m.cache_lookup(false);
        m.cache_lookup(false);
        let text = m.render();
        for line in [
            "kinet_dns_requests_total{proto=\"udp\",type=\"A\"} 2",
            "kinet_dns_requests_total{proto=\"tcp\",type=\"SRV\"} 1",
            "kinet_dns_requests_total{proto=\"udp\",type=\"other\"} 1",
            "kinet_dns_responses_total{rcode=\"NXDOMAIN\"} 1",
            "kinet_dns_responses_total{rcode=\"REFUSED\"} 1",
            "kinet_dns_request_duration_seconds_bucket{le=\"0.00025\"} 1",
            "kinet_dns_request_duration_seconds_bucket{le=\"0.004\"} 2",
            "kinet_dns_request_duration_seconds_bucket{le=\"8.192\"} 2",
            "kinet_dns_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "kinet_dns_request_duration_seconds_count 3",
            "kinet_dns_truncated_responses_total 1",
            "kinet_dns_cache_hits_total 1",
            "kinet_dns_cache_misses_total 2",
            "# TYPE kinet_dns_request_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("rcode=\"SERVFAIL\""),
            "unseen series are omitted"
        );
    }
}
