//! Running dnsperf and reading its report.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::stats::Samples;

/// What one dnsperf run measured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub completed: u64,
    pub lost: u64,
    pub qps: f64,
    /// Per-query latencies (only with `verbose`).
    pub latencies: Samples,
}

/// One dnsperf run from `cpu` against `server` with the queries in `data`: as fast as it
/// goes (`max_qps` None) or paced, with per-query latencies when `verbose`.
pub async fn run(
    server: SocketAddr,
    data: &Path,
    seconds: u64,
    max_qps: Option<u64>,
    cpu: usize,
    verbose: bool,
) -> Result<Run> {
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", &cpu.to_string(), "dnsperf"])
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(data)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "8",
            "-q",
            "256",
            "-t",
            "2",
        ]);
    if let Some(q) = max_qps {
        cmd.args(["-Q", &q.to_string()]);
    }
    if verbose {
        cmd.arg("-v");
    }
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .context("running dnsperf (apt-get install dnsperf)")?;
    if !out.status.success() {
        bail!(
            "dnsperf failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = parse_summary(&text)?;
    if verbose {
        run.latencies = parse_latencies(&text);
    }
    Ok(run)
}

fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

/// The "Statistics:" block.
pub fn parse_summary(text: &str) -> Result<Run> {
    let num = |label: &str| -> Result<u64> {
        field(text, label)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {label:?} in dnsperf's report"))
    };
    Ok(Run {
        completed: num("Queries completed:")?,
        lost: num("Queries lost:")?,
        qps: field(text, "Queries per second:")
            .and_then(|v| v.parse().ok())
            .context("no queries per second in dnsperf's report")?,
        latencies: Samples::default(),
    })
}

/// `-v` lines: `> NOERROR name A 0.000169` (seconds).
pub fn parse_latencies(text: &str) -> Samples {
    let mut samples = Samples::default();
    for line in text.lines().filter(|l| l.starts_with("> ")) {
        if let Some(secs) = line.rsplit(' ').next().and_then(|s| s.parse::<f64>().ok()) {
            samples.push(Duration::from_secs_f64(secs));
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
[Status] Stopping after 1.000000 seconds
> NOERROR a.b.svc.cluster.local A 0.000169
> NXDOMAIN nope.cluster.local A 0.000131
> NOERROR a.b.svc.cluster.local A 0.002000
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         114582
  Queries completed:    114580 (100.00%)
  Queries lost:         2 (0.00%)

  Response codes:       NOERROR 57291 (50.00%), NXDOMAIN 57291 (50.00%)
  Run time (s):         2.005228
  Queries per second:   57141.631775

  Average Latency (s):  0.001414 (min 0.000028, max 0.006514)
";

    #[test]
    fn reads_the_report() {
        let run = parse_summary(REPORT).unwrap();
        assert_eq!((run.completed, run.lost), (114580, 2));
        assert!((run.qps - 57141.63).abs() < 0.01);
        let lat = parse_latencies(REPORT);
        assert_eq!(lat.len(), 3);
        assert_eq!(lat.p99(), Duration::from_micros(2000));
        assert!(parse_summary("garbage").is_err());
    }
}
