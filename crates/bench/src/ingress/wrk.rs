//! Running wrk and reading its report.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::Command;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Non-2xx/3xx responses and socket errors.
    pub errors: u64,
}

fn duration(text: &str) -> Option<Duration> {
    let (num, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Reads `wrk --latency` output.
pub fn parse(out: &str) -> Option<Figures> {
    let mut f = Figures {
        rps: 0.0,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => f.rps = v.parse().ok()?,
            ["50%", v] => f.p50 = duration(v)?,
            ["99%", v] => f.p99 = duration(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => f.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                f.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    (f.rps > 0.0).then_some(f)
}

/// `wrk` on `cpu` with `connections` for `seconds` against `url` with `Host: host`.
pub async fn run(
    cpu: usize,
    connections: usize,
    seconds: u64,
    url: &str,
    host: &str,
) -> Result<Figures> {
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string(), "wrk", "--latency", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["-H", &format!("Host: {host}"), url])
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).with_context(|| {
        format!(
            "unexpected wrk output:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let out = "Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  500.00us  12.00ms   90.00%
    Req/Sec    30.00k     1.00k   32.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    2.00ms
     90%    3.00ms
     99%    1.20s
  150000 requests in 5.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30000.50
Transfer/sec:     20.00MB
";
        let f = parse(out).unwrap();
        assert_eq!(f.rps, 30000.5);
        assert_eq!(f.p50, Duration::from_micros(812));
        assert_eq!(f.p99, Duration::from_millis(1200));
        assert_eq!(f.errors, 7);
        assert!(parse("wrk: command failed").is_none());
    }
}
