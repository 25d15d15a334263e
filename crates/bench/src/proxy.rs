//! `kinet bench proxy`: the service proxy's nftables table in a namespace of its own (root).
//!
//! - Whole table, with N Services × 10 endpoints: render; one nfnetlink transaction into
//!   an empty namespace (how the proxy loads) against `nft -f` of the same table (how it
//!   used to; skipped without `nft`); a resync that reads the intact table back (after
//!   anyone else's commit in the namespace); and the proxy's usual resync every 30 s (no
//!   change, ruleset generation untouched), as a share of one core.
//! - Incremental: one EndpointSlice changes with each table loaded; the time from the
//!   changed objects to the kernel having committed the difference (the proxy's Renderer
//!   re-rendering that Service + one nfnetlink transaction), p50/p99. The API watch delay
//!   is not in it (see the controllers benchmark).
//! - Connection rate: new TCP connections per second from a client pod to one ClusterIP,
//!   with 10 and with the large number of Services loaded (verdict maps: should be flat).
//! - Throughput: one TCP stream through the ClusterIP against the pod IP directly.
//! - Pod Ready → traffic through a ClusterIP on a live cluster ([`super::ready_traffic`]).
//!
//! `--mode iptables|both` measures kube-proxy's iptables mode too ([`super::proxy_iptables`]):
//! its whole and incremental loads, and the connection rate and throughput with its chains
//! loaded instead of the table, in the same run.
//!
//! Everything lives in namespaces `kinet-b<pid>-*`, removed at the end (also on error).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_netns::NetNs;
use kinet_proxy::{
    render, Applier, ApplyOutcome, IptablesApplier, NodeInfo, ProxyConfig, ProxyMode, Renderer,
    Ruleset,
};
use serde_json::json;

use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Service counts for the full-sync figures, ascending; the last is the "large" table.
    pub services: Vec<usize>,
    pub endpoints: usize,
    pub samples: usize,
    /// Seconds per connection-rate run.
    pub seconds: f64,
    /// MiB per throughput run.
    pub mib: usize,
    /// The proxy modes measured, side by side.
    pub modes: Vec<ProxyMode>,
    /// Service counts for pod Ready → traffic on a live cluster ([`super::ready_traffic`]).
    pub ready_services: Vec<usize>,
    /// Scale-ups timed per count; 0 skips the live cluster.
    pub ready_samples: usize,
}

pub(crate) const CLIENT_IP: &str = "10.244.1.10";
pub(crate) const SERVER_IP: &str = "10.244.1.20";
const GATEWAY: &str = "10.244.1.1";
/// Service 0's ClusterIP: the one traffic goes to.
const TARGET: &str = "10.96.0.10";

fn cluster_ip(i: usize) -> String {
    let n = 10 + i as u32; // 10.96.0.10 upwards, inside 10.96.0.0/12
    format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{i}"), "resourceVersion": "1"},
        "spec": {"clusterIP": cluster_ip(i), "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }))
    .expect("static service")
}

/// Service i's slice; service 0's endpoints include the real server pod.
/// `version` is its resourceVersion: the proxy re-renders a Service when it changes.
pub(crate) fn slice(
    i: usize,
    endpoints: usize,
    skip: Option<usize>,
    version: usize,
) -> EndpointSlice {
    let eps: Vec<_> = (0..endpoints)
        .filter(|e| Some(*e) != skip)
        .map(|e| {
            let ip = if i == 0 && e == 0 {
                SERVER_IP.to_string()
            } else {
                let n = i * endpoints + e;
                format!("10.244.{}.{}", 2 + (n / 250) % 250, 1 + n % 250)
            };
            json!({"addresses": [ip], "nodeName": "bench-node", "conditions": {"ready": true}})
        })
        .collect();
    // Service 0 has only the server, so every connection reaches it.
    let eps = if i == 0 { eps[..1].to_vec() } else { eps };
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{i}-1"),
                     "resourceVersion": version.to_string(),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .expect("static slice")
}

pub(crate) fn node() -> NodeInfo {
    NodeInfo {
        name: "bench-node".into(),
        node_ips: vec![],
        pod_cidr: Some("10.244.1.0/24".parse().expect("static cidr")),
    }
}

pub(crate) fn objects(n: usize, endpoints: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
    (
        (0..n).map(service).collect(),
        (0..n).map(|i| slice(i, endpoints, None, 1)).collect(),
    )
}

/// Namespaces of the benchmark, deleted on Drop.
pub(crate) struct Spaces(pub(crate) Vec<String>);

impl Spaces {
    pub(crate) fn add(&mut self, role: &str) -> Result<NetNs> {
        let name = format!("kinet-b{}-{role}", std::process::id());
        let ns = NetNs::create(&name).with_context(|| format!("creating {name}"))?;
        self.0.push(name.clone());
        ip(&name, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Spaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = kinet_netns::delete(n);
        }
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<()> {
    run(&["ip", "-n", ns], args)
}

fn run(prefix: &[&str], args: &[&str]) -> Result<()> {
    let out = Command::new(prefix[0])
        .args(&prefix[1..])
        .args(args)
        .output()
        .with_context(|| format!("{prefix:?} {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{prefix:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn sysctl(ns: &str, kv: &str) -> Result<()> {
    run(&["ip", "netns", "exec", ns, "sysctl", "-qw"], &[kv])
}

/// A pod namespace on a veth from the node, ptp style.
fn add_pod(node: &str, pod: &str, idx: usize, addr: &str) -> Result<()> {
    let host_if = format!("kb{idx}");
    ip(
        node,
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", pod,
        ],
    )?;
    ip(
        node,
        &["addr", "add", &format!("{GATEWAY}/32"), "dev", &host_if],
    )?;
    ip(node, &["link", "set", &host_if, "up"])?;
    ip(
        node,
        &["route", "add", &format!("{addr}/32"), "dev", &host_if],
    )?;
    ip(pod, &["addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
    ip(pod, &["link", "set", "eth0", "up"])?;
    ip(pod, &["route", "add", GATEWAY, "dev", "eth0"])?;
    ip(
        pod,
        &["route", "add", "default", "via", GATEWAY, "dev", "eth0"],
    )
}

/// A forwarding node namespace with a client pod (`CLIENT_IP`) and a server pod
/// (`SERVER_IP`) on veths: `[node, client, server]`.
pub(crate) fn client_and_server(spaces: &mut Spaces) -> Result<[NetNs; 3]> {
    let node_ns = spaces.add("node")?;
    let client = spaces.add("client")?;
    let server = spaces.add("server")?;
    sysctl(node_ns.name(), "net.ipv4.ip_forward=1")?;
    sysctl(client.name(), "net.ipv4.ip_local_port_range=1024 65000")?;
    add_pod(node_ns.name(), client.name(), 0, CLIENT_IP)?;
    add_pod(node_ns.name(), server.name(), 1, SERVER_IP)?;
    Ok([node_ns, client, server])
}

/// Reads the table back and repairs it towards `rs`; returns the time and the number of
/// changes sent.
fn load(applier: &mut Applier, rs: &Ruleset) -> Result<(Duration, usize)> {
    match applier.reconcile(rs)? {
        ApplyOutcome::Applied {
            duration, changes, ..
        } => Ok((duration, changes)),
        ApplyOutcome::Unchanged => bail!("a reconcile was skipped"),
    }
}

/// `nft -f` of the whole table inside `ns`; `None` without the `nft` program.
fn nft_load(ns: &str, rs: &Ruleset) -> Result<Option<Duration>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("nft").is_file()) {
        return Ok(None);
    }
    let start = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = child.context("ip netns exec … nft")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(rs.to_nft().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft -f: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(Some(start.elapsed()))
}

/// One proxy mode's loads, for the incremental benchmark.
pub(crate) trait Syncer {
    /// Loads the objects whole.
    fn load(&mut self, svcs: &[Service], slices: &[EndpointSlice]) -> Result<()>;
    /// Loads a change of Service `changed`'s slice as the mode's proxy does: (render time,
    /// kernel time).
    fn sync(
        &mut self,
        svcs: &[Service],
        slices: &[EndpointSlice],
        changed: usize,
    ) -> Result<(Duration, Duration)>;
}

/// The nftables proxy: its Renderer looks at the Service the watch named only, and the
/// applier sends the difference.
struct NftSyncer<'a> {
    applier: &'a mut Applier,
    renderer: Renderer,
}

impl Syncer for NftSyncer<'_> {
    fn load(&mut self, svcs: &[Service], slices: &[EndpointSlice]) -> Result<()> {
        let synced = self.renderer.sync(svcs, slices);
        self.applier.force_resync();
        self.applier.apply_synced(&self.renderer, synced)?;
        Ok(())
    }

    fn sync(
        &mut self,
        svcs: &[Service],
        slices: &[EndpointSlice],
        changed: usize,
    ) -> Result<(Duration, Duration)> {
        let start = Instant::now();
        let key = ("bench".to_string(), format!("svc-{changed}"));
        let now = (&svcs[changed], vec![&slices[changed]]);
        let synced = self.renderer.sync_services([(key, Some(now))]);
        let rendered = start.elapsed();
        match self.applier.apply_synced(&self.renderer, synced)? {
            ApplyOutcome::Applied {
                full: false,
                duration,
                ..
            } => Ok((rendered, duration)),
            other => bail!("expected an incremental load, got {other:?}"),
        }
    }
}

/// For each size of `opts.services`: `opts.samples` EndpointSlice changes (one endpoint of
/// one Service leaves or comes back) with that many Services loaded, printed as a table of
/// render, kernel and total time (p50 / p99).
pub(crate) fn incremental(
    syncer: &mut impl Syncer,
    title: &str,
    columns: [&str; 2],
    opts: &Options,
) -> Result<()> {
    println!();
    println!(
        "{title}, EndpointSlice change → rules committed, {} samples per size (p50 / p99, ms):",
        opts.samples
    );
    println!();
    println!("| Services | {} | {} | total |", columns[0], columns[1]);
    println!("|---:|---:|---:|---:|");
    for &n in &opts.services {
        let (svcs, mut slices) = objects(n, opts.endpoints);
        syncer.load(&svcs, &slices)?;
        let [mut renders, mut kernel, mut total] = [(); 3].map(|_| Samples::default());
        for s in 0..opts.samples {
            let i = 1 + (s * 7919) % (n - 1).max(1);
            let skip = if slices[i].endpoints.len() == opts.endpoints {
                Some(s % opts.endpoints)
            } else {
                None
            };
            slices[i] = slice(i, opts.endpoints, skip, 2 + s);
            let start = Instant::now();
            let (r, k) = syncer.sync(&svcs, &slices, i)?;
            total.push(start.elapsed());
            renders.push(r);
            kernel.push(k);
        }
        let cell = |s: &Samples| format!("{} / {}", ms(s.p50()), ms(s.p99()));
        println!(
            "| {n} | {} | {} | {} |",
            cell(&renders),
            cell(&kernel),
            cell(&total)
        );
    }
    Ok(())
}

pub async fn run_bench(opts: Options) -> Result<()> {
    let (counts, samples) = (opts.ready_services.clone(), opts.ready_samples);
    tokio::task::spawn_blocking(move || bench(opts)).await??;
    if samples > 0 {
        super::ready_traffic::run(&counts, samples).await?;
    }
    Ok(())
}

fn bench(opts: Options) -> Result<()> {
    let Some(&large) = opts.services.last() else {
        bail!("give at least one service count");
    };
    if opts.modes.is_empty() {
        bail!("give at least one proxy mode");
    }
    let mut spaces = Spaces(Vec::new());
    let [node_ns, client, server] = client_and_server(&mut spaces)?;
    let config = ProxyConfig::default();
    let mut applier = Applier::new(node_ns.path(), config.table.clone());
    let mut iptables = IptablesApplier::new(node_ns.path());

    let modes: Vec<&str> = opts.modes.iter().map(|m| m.as_str()).collect();
    println!(
        "# kinet bench proxy ({} endpoints per Service; {})",
        opts.endpoints,
        modes.join(" and ")
    );
    if opts.modes.contains(&ProxyMode::Nftables) {
        nft_syncs(&mut applier, node_ns.name(), &config, &opts)?;
    }
    if opts.modes.contains(&ProxyMode::Iptables) {
        applier.delete()?;
        super::proxy_iptables::syncs(&node_ns.path(), &config, &opts)?;
    }
    let (svcs, slices) = objects(large, opts.endpoints);

    // Traffic: a server pod behind service 0.
    let stop = Arc::new(AtomicBool::new(false));
    let listener = server.run(|| TcpListener::bind("0.0.0.0:8080"))??;
    let stopper = StopOnDrop(stop.clone());
    let stop2 = stop.clone();
    std::thread::spawn(move || serve(listener, stop2));

    // Each mode's rules for 10 and for all Services; loading one removes the other mode's.
    let (small, big) = (&svcs[..10], &slices[..10]);
    let nft_tables = [
        render(small, big, &node(), &config),
        render(&svcs, &slices, &node(), &config),
    ];
    let ipt_tables = [
        super::proxy_iptables::tables(small, big, &config),
        super::proxy_iptables::tables(&svcs, &slices, &config),
    ];
    let mut load_as = |mode: ProxyMode, all: bool| -> Result<()> {
        let i = usize::from(all);
        match mode {
            ProxyMode::Nftables => {
                iptables.remove_all()?;
                applier.reconcile(&nft_tables[i])?;
            }
            ProxyMode::Iptables => {
                applier.delete()?;
                super::proxy_iptables::load_whole(&mut iptables, ipt_tables[i].clone())?;
            }
        }
        Ok(())
    };
    let target: SocketAddr = format!("{TARGET}:80").parse()?;
    let direct: SocketAddr = format!("{SERVER_IP}:8080").parse()?;
    let secs = opts.seconds;
    let rate = |to: SocketAddr| -> Result<f64> { client.run(move || connect_rate(to, secs))? };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Per mode: (10 Services, all Services).
    let mut rates = Vec::new();
    for &mode in &opts.modes {
        let (mut s, mut b) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            load_as(mode, false)?;
            s.push(rate(target)?);
            load_as(mode, true)?;
            b.push(rate(target)?);
        }
        rates.push((median(s), median(b)));
    }
    load_as(opts.modes[0], false)?;
    let direct_rate = rate(direct)?;
    println!();
    println!("New TCP connections per second to one ClusterIP (one client thread, median of 3 × {secs} s):");
    println!();
    println!(
        "| Services loaded | {} |",
        modes.join(" (conn/s) | ") + " (conn/s)"
    );
    println!("|---|{}", "---:|".repeat(modes.len()));
    let row = |label: &str, cell: &dyn Fn(&(f64, f64)) -> String| {
        let cells: Vec<String> = rates.iter().map(cell).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row("10", &|(s, _)| format!("{s:.0}"));
    row(&large.to_string(), &|(_, b)| format!("{b:.0}"));
    row(&format!("{large} vs 10"), &|(s, b)| format!("{:.2}", b / s));
    println!();
    println!("The pod IP directly (no Service): {direct_rate:.0} conn/s.");

    // Throughput, all Services loaded.
    let bytes = opts.mib << 20;
    let through = |to: SocketAddr| -> Result<f64> { client.run(move || throughput(to, bytes))? };
    let mut streams = Vec::new();
    for &mode in &opts.modes {
        load_as(mode, true)?;
        let (mut via, mut dir) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            via.push(through(target)?);
            dir.push(through(direct)?);
        }
        streams.push((median(via), median(dir)));
    }
    println!();
    println!(
        "One TCP stream, {} MiB, median of 3 ({large} Services loaded):",
        opts.mib
    );
    println!();
    println!("| path | {} |", modes.join(" (Gbit/s) | ") + " (Gbit/s)");
    println!("|---|{}", "---:|".repeat(modes.len()));
    let cells = |f: &dyn Fn(&(f64, f64)) -> String| -> String {
        streams.iter().map(f).collect::<Vec<_>>().join(" | ")
    };
    println!(
        "| pod IP directly | {} |",
        cells(&|(_, d)| format!("{d:.2}"))
    );
    println!("| ClusterIP | {} |", cells(&|(v, _)| format!("{v:.2}")));
    println!(
        "| ClusterIP vs direct | {} |",
        cells(&|(v, d)| format!("{:.2}", v / d))
    );
    drop(stopper);
    applier.delete()?;
    iptables.remove_all()?;
    Ok(())
}

/// The nftables mode's whole-load and incremental tables.
fn nft_syncs(applier: &mut Applier, ns: &str, config: &ProxyConfig, opts: &Options) -> Result<()> {
    println!();
    println!("nftables mode (nfnetlink):");
    println!();
    println!("| Services | rules | render (ms) | netlink whole load (ms) | nft -f whole load (ms) | resync, read back (ms) | resync, untouched (ms) | idle CPU, resync every 30 s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &opts.services {
        let (svcs, slices) = objects(n, opts.endpoints);
        let start = Instant::now();
        let rs = render(&svcs, &slices, &node(), config);
        let render_took = start.elapsed();
        applier.delete()?;
        let nft = nft_load(ns, &rs)?;
        applier.delete()?;
        let (netlink, _) = load(applier, &rs)?;
        let (read_back, changes) = load(applier, &rs)?;
        if changes != 0 {
            bail!("a resync of an intact table sent {changes} changes");
        }
        // The proxy's own resync: the Renderer finds no change, and the kernel's ruleset
        // generation shows nothing was committed since our last transaction.
        let mut renderer = Renderer::new(&node(), config);
        let synced = renderer.sync(&svcs, &slices);
        applier.apply_synced(&renderer, synced)?;
        applier.force_resync();
        let start = Instant::now();
        let synced = renderer.sync(&svcs, &slices);
        applier.apply_synced(&renderer, synced)?;
        let untouched = start.elapsed();
        // Wall time over the resync period: an upper bound of the CPU share.
        let idle = untouched.as_secs_f64() / 30.0 * 100.0;
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {idle:.3}% |",
            rs.rule_count(),
            ms(render_took),
            ms(netlink),
            nft.map_or("-".into(), ms),
            ms(read_back),
            ms(untouched),
        );
    }

    let mut syncer = NftSyncer {
        applier,
        renderer: Renderer::new(&node(), config),
    };
    incremental(
        &mut syncer,
        "nftables mode",
        [
            "render (the Service named) + diff",
            "kernel transaction (difference)",
        ],
        opts,
    )?;
    Ok(())
}

pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Accepts until `stop`. A connection whose first byte is `T` gets a stream of bytes (the
/// length follows as 8 bytes); any other is closed at once by the server.
pub(crate) fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let mut head = [0u8; 9];
                if conn.read_exact(&mut head).is_ok() && head[0] == b'T' {
                    let len = u64::from_be_bytes(head[1..].try_into().unwrap_or_default()) as usize;
                    std::thread::spawn(move || {
                        let buf = vec![0x5au8; 1 << 20];
                        let mut left = len;
                        while left > 0 {
                            let n = left.min(buf.len());
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            left -= n;
                        }
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Connections per second: connect, send one byte, wait for the server's close.
pub(crate) fn connect_rate(to: SocketAddr, secs: f64) -> Result<f64> {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .with_context(|| format!("connecting to {to}"))?;
        s.write_all(b"C00000000")?;
        let mut buf = [0u8; 1];
        let _ = s.read(&mut buf);
        count += 1;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Gbit/s of one stream of `bytes` from the server.
pub(crate) fn throughput(to: SocketAddr, bytes: usize) -> Result<f64> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    let mut head = vec![b'T'];
    head.extend_from_slice(&(bytes as u64).to_be_bytes());
    let start = Instant::now();
    s.write_all(&head)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < bytes {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("stream ended after {got} of {bytes} bytes");
        }
        got += n;
    }
    Ok(got as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9)
}
