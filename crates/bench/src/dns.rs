//! `kinet bench dns`: kinet's DNS server against Knot DNS, with dnsperf.
//!
//! kinet's server runs as a child process that watches an in-process API server holding 1k
//! and 10k ClusterIP Services (the path a cluster takes: watches, view, answers); Knot
//! serves the same A records from a zone file. Each server is pinned to one CPU and dnsperf
//! to another, all on loopback. Per server and size: peak queries/s, queries per CPU-second
//! of the server, p99 latency at half the peak rate, and resident memory over the server's
//! empty-zone baseline.

mod perf;
pub(crate) mod servers;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use rand::seq::SliceRandom;
use serde_json::json;

use super::stats::ms;
use servers::Server;

pub use servers::serve_child;

const NS: &str = "bench-dns";
const ZONE: &str = "cluster.local";

#[derive(Debug, Clone)]
pub struct Options {
    /// Service counts, ascending.
    pub services: Vec<usize>,
    /// Length of each dnsperf run.
    pub seconds: u64,
    /// The CPU the server under test is pinned to; dnsperf gets `client_cpu`.
    pub server_cpu: usize,
    pub client_cpu: usize,
}

/// One server at one size.
#[derive(Debug, Clone)]
struct Row {
    server: &'static str,
    services: usize,
    peak_qps: f64,
    qps_per_cpu_second: f64,
    lost: u64,
    half_rate: u64,
    p50: Duration,
    p99: Duration,
    rss_kib: u64,
    baseline_kib: u64,
}

pub async fn run(opts: Options) -> Result<()> {
    for tool in ["dnsperf", "knotd", "taskset"] {
        if !on_path(tool) {
            bail!("{tool} is not installed (apt-get install dnsperf knot util-linux)");
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("kinet-bench-dns-")
        .tempdir()?;
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    super::api::namespace(&client, NS).await?;

    // Baselines: each server with no Services (kinet's view still holds `kubernetes`).
    let mut kinet0 = servers::kinet(&api.url, &api.ca_pem, &api.token, opts.server_cpu).await?;
    servers::wait_answers(
        &mut kinet0,
        "kubernetes.default.svc.cluster.local",
        Duration::from_secs(30),
    )
    .await?;
    let kinet_base = kinet0.rss_kib();
    drop(kinet0);
    let mut knot0 = servers::knot(
        &scratch.path().join("knot-0"),
        ZONE,
        &zone_text(&[]),
        opts.server_cpu,
    )
    .await?;
    servers::wait_answers(&mut knot0, "ns.dns.cluster.local", Duration::from_secs(10)).await?;
    let knot_base = knot0.rss_kib();
    drop(knot0);

    let mut rows = Vec::new();
    let mut created = 0;
    for &n in &opts.services {
        create_services(&client, created, n).await?;
        created = created.max(n);
        let records = records(&client).await?;
        let queries = scratch.path().join(format!("queries-{n}"));
        write_queries(&queries, &records)?;
        let last = format!(
            "{}.{NS}.svc.{ZONE}",
            records.last().context("no services")?.0
        );

        let mut kinet = servers::kinet(&api.url, &api.ca_pem, &api.token, opts.server_cpu).await?;
        servers::wait_answers(&mut kinet, &last, Duration::from_secs(120)).await?;
        rows.push(measure("kinet", n, &kinet, kinet_base, &queries, &opts).await?);
        drop(kinet);

        let dir = scratch.path().join(format!("knot-{n}"));
        let mut knot = servers::knot(&dir, ZONE, &zone_text(&records), opts.server_cpu).await?;
        servers::wait_answers(&mut knot, &last, Duration::from_secs(60)).await?;
        rows.push(measure("knot", n, &knot, knot_base, &queries, &opts).await?);
        drop(knot);
    }
    print!("{}", report(&rows, &opts));
    Ok(())
}

pub(crate) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

async fn measure(
    name: &'static str,
    services: usize,
    server: &Server,
    baseline_kib: u64,
    queries: &Path,
    opts: &Options,
) -> Result<Row> {
    // A short warm-up, then the peak run with the server's CPU time around it.
    perf::run(server.addr, queries, 1, None, opts.client_cpu, false).await?;
    let cpu0 = server.cpu_time();
    let peak = perf::run(
        server.addr,
        queries,
        opts.seconds,
        None,
        opts.client_cpu,
        false,
    )
    .await?;
    let cpu = server.cpu_time().saturating_sub(cpu0);
    let half_rate = (peak.qps / 2.0) as u64;
    let half = perf::run(
        server.addr,
        queries,
        opts.seconds,
        Some(half_rate),
        opts.client_cpu,
        true,
    )
    .await?;
    eprintln!(
        "   {name} {services}: {:.0} q/s, server CPU {:.2} s, p99 at {half_rate} q/s {} ms",
        peak.qps,
        cpu.as_secs_f64(),
        ms(half.latencies.p99())
    );
    Ok(Row {
        server: name,
        services,
        peak_qps: peak.qps,
        qps_per_cpu_second: peak.completed as f64 / cpu.as_secs_f64().max(0.01),
        lost: peak.lost + half.lost,
        half_rate,
        p50: half.latencies.p50(),
        p99: half.latencies.p99(),
        rss_kib: server.rss_kib(),
        baseline_kib,
    })
}

/// Creates Services `svc-<from>` .. `svc-<to - 1>` (ClusterIP, one named port).
async fn create_services(client: &Client, from: usize, to: usize) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(from..to)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"selector": {"app": format!("a{i}")},
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                }))?;
                api.create(&PostParams::default(), &svc).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
}

/// `(name, clusterIP)` of every Service in the bench namespace, in a fixed order.
async fn records(client: &Client) -> Result<Vec<(String, String)>> {
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    let mut out: Vec<(String, String)> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| Some((s.metadata.name?, s.spec?.cluster_ip?)))
        .collect();
    out.sort();
    Ok(out)
}

/// The same records as a zone file; SOA and NS as kinet's zone has them.
fn zone_text(records: &[(String, String)]) -> String {
    let mut z = format!(
        "$ORIGIN {ZONE}.\n$TTL 30\n@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 30\n\
         @ IN NS ns.dns.{ZONE}.\nns.dns IN A 10.96.0.10\n"
    );
    for (name, ip) in records {
        let _ = writeln!(z, "{name}.{NS}.svc 5 IN A {ip}");
    }
    z
}

/// Every Service name once, shuffled, as dnsperf's input.
fn write_queries(path: &Path, records: &[(String, String)]) -> Result<()> {
    let mut lines: Vec<String> = records
        .iter()
        .map(|(name, _)| format!("{name}.{NS}.svc.{ZONE} A\n"))
        .collect();
    lines.shuffle(&mut rand::rng());
    std::fs::write(path, lines.concat()).context("writing dnsperf's input")
}

fn report(rows: &[Row], opts: &Options) -> String {
    let mut out = format!(
        "\nDNS, {} s per run; server pinned to CPU {}, dnsperf to CPU {} (8 clients, 256 in flight), loopback UDP\n\n",
        opts.seconds, opts.server_cpu, opts.client_cpu
    );
    out.push_str("| server | Services | peak q/s (1 CPU) | q/s per CPU-second | p50 / p99 at half peak (ms) | RSS (MiB) | RSS over empty, per 1k Services (MiB) | lost |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let per_1k = (r.rss_kib.saturating_sub(r.baseline_kib)) as f64
            / 1024.0
            / (r.services as f64 / 1000.0);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {} / {} (at {} q/s) | {:.1} | {:.2} | {} |",
            r.server,
            r.services,
            r.peak_qps,
            r.qps_per_cpu_second,
            ms(r.p50),
            ms(r.p99),
            r.half_rate,
            r.rss_kib as f64 / 1024.0,
            per_1k,
            r.lost
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_file_holds_the_services() {
        let z = zone_text(&[("svc-0".into(), "10.96.0.20".into())]);
        assert!(z.starts_with("$ORIGIN cluster.local.\n"));
        assert!(
            z.contains("\nsvc-0.bench-dns.svc 5 IN A 10.96.0.20\n"),
            "{z}"
        );
    }
}
