//! `kinet bench pods`: a real 3-node cluster (its own name and state folder, removed at the
//! end). Measures pod start latency (bind seen -> Running with an IP seen, through one watch)
//! and throughput for batches of pods, the pod network setup alone (`kinet_cni::add_pod` into
//! fresh namespaces), memory per idle pod and per agent (PSS), and pod-to-pod TCP throughput
//! with iperf3 on one node and across nodes (VXLAN, and host-gw on a second cluster) against a
//! veth pair made by hand, in interleaved rounds of the same run.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kinet_agent::pods::PodRecord;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

use super::cluster::BenchCluster;
use super::procs::{pod_processes, pss_kib};
use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Pod batch sizes, e.g. 100 and 500.
    pub batches: Vec<usize>,
    /// Pods for the network setup measurement.
    pub network_pods: usize,
    /// Interleaved throughput rounds (raw veth, then every pod pair, per round).
    pub throughput_rounds: usize,
}

fn pod(name: &str, app: &str, args: &[&str], node: Option<&str>) -> Result<Pod> {
    let mut spec = json!({"containers": [{"name": "c",
        "image": "registry.k8s.io/e2e-test-images/agnhost:2.39", "args": args}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}}, "spec": spec,
    }))?)
}

pub(crate) fn running_with_ip(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
    })
}

/// Creates `count` pods at once; returns (wall time until all Running, per-pod latencies).
async fn batch(client: &Client, app: &str, count: usize) -> Result<(Duration, Samples)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    let mut events = watcher(pods.clone(), cfg).applied_objects().boxed();
    let start = Instant::now();
    let creator = {
        let pods = pods.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..count {
                let pods = pods.clone();
                let p = pod(&format!("{app}-{i}"), &app, &["pause"], None)?;
                tasks.push(tokio::spawn(async move {
                    pods.create(&PostParams::default(), &p).await.map(|_| ())
                }));
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        })
    };
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Samples::default();
    let mut done = std::collections::HashSet::new();
    let deadline = start + Duration::from_secs(120);
    while done.len() < count {
        let next = tokio::time::timeout_at(deadline.into(), events.try_next())
            .await
            .context("pods not Running within 120 s")??;
        let Some(p) = next else { bail!("watch ended") };
        let name = p.metadata.name.clone().unwrap_or_default();
        let now = Instant::now();
        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
            bound.entry(name.clone()).or_insert(now);
        }
        if running_with_ip(&p) && done.insert(name.clone()) {
            latencies.push(now - bound[&name]);
        }
    }
    let wall = start.elapsed();
    creator.await??;
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&format!("app={app}")),
    )
    .await?;
    while !pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((wall, latencies))
}

async fn memory(c: &BenchCluster, client: &Client, count: usize) -> Result<(f64, f64)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let all = |_: &PodRecord| true;
    let before: u64 = pod_processes(&c.dir(), all).into_iter().map(pss_kib).sum();
    for i in 0..count {
        pods.create(
            &PostParams::default(),
            &pod(&format!("idle-{i}"), "idle", &["pause"], None)?,
        )
        .await?;
    }
    let lp = ListParams::default().labels("app=idle");
    while pods
        .list(&lp)
        .await?
        .items
        .iter()
        .filter(|p| running_with_ip(p))
        .count()
        < count
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: u64 = pod_processes(&c.dir(), all).into_iter().map(pss_kib).sum();
    let per_pod = (after.saturating_sub(before)) as f64 / count as f64;
    let agents: Vec<u32> = std::fs::read_dir(c.dir().join("agents"))?
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect();
    let agent_kib =
        agents.iter().map(|p| pss_kib(*p)).sum::<u64>() as f64 / agents.len().max(1) as f64;
    pods.delete_collection(&DeleteParams::default(), &lp)
        .await?;
    while !pods.list(&lp).await?.items.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((per_pod, agent_kib))
}

/// iperf3 between two network namespaces given as nsenter target flags: Gbit/s, and Gbit per
/// CPU-second of the two iperf3 processes (with the kernel work done in their context), which
/// other load on the machine moves far less than the rate; `None` when iperf3 reports no CPU.
fn iperf(server: &[String], client: &[String], server_ip: &str) -> Result<[Option<f64>; 2]> {
    let mut srv = Command::new("nsenter")
        .args(server)
        .args(["iperf3", "-s", "-1", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting iperf3 (apt-get install iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("nsenter")
        .args(client)
        .args(["iperf3", "-c", server_ip, "-p", "5201", "-t", "3", "-J"])
        .output()?;
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output: {}", String::from_utf8_lossy(&out.stderr)))?;
    figures(&v["end"])
}

/// Gbit/s and Gbit per CPU-second from the `end` of iperf3's JSON.
fn figures(end: &serde_json::Value) -> Result<[Option<f64>; 2]> {
    let gbit = end["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 gave no result")?
        / 1e9;
    let cpu = &end["cpu_utilization_percent"];
    // Both ends or nothing: half the CPU would double the figure, none would make it infinite.
    let cpu_s = [&cpu["host_total"], &cpu["remote_total"]]
        .iter()
        .map(|c| c.as_f64())
        .sum::<Option<f64>>()
        .map(|percent| percent / 100.0)
        .filter(|s| *s > 0.0);
    Ok([Some(gbit), cpu_s.map(|s| gbit / s)])
}

fn target(pid: &str) -> Vec<String> {
    vec![format!("--target={pid}"), "--net".into()]
}

/// A veth pair between two fresh namespaces, the baseline for pod throughput.
fn raw_veth() -> Result<[Option<f64>; 2]> {
    let tag = format!("kinet-bench{}", std::process::id());
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let sh = |args: &[&str]| -> Result<()> {
        let st = Command::new("ip").args(args).status()?;
        if !st.success() {
            bail!("ip {args:?} failed");
        }
        Ok(())
    };
    let result = (|| {
        sh(&["netns", "add", &a])?;
        sh(&["netns", "add", &b])?;
        sh(&[
            "-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b,
        ])?;
        sh(&["-n", &a, "addr", "add", "10.99.0.1/24", "dev", "eth0"])?;
        sh(&["-n", &b, "addr", "add", "10.99.0.2/24", "dev", "eth0"])?;
        for ns in [&a, &b] {
            sh(&["-n", ns, "link", "set", "eth0", "up"])?;
            sh(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        iperf(
            &[format!("--net=/run/netns/{a}")],
            &[format!("--net=/run/netns/{b}")],
            "10.99.0.1",
        )
    })();
    let _ = sh(&["netns", "del", &a]);
    let _ = sh(&["netns", "del", &b]);
    result
}

/// Two pods on given nodes; returns ((server pid, server ip), client pid).
async fn pair(
    client: &Client,
    nodes: (&str, &str),
    tag: &str,
) -> Result<((String, String), String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, node) in [nodes.0, nodes.1].iter().enumerate() {
        pods.create(
            &PostParams::default(),
            &pod(&format!("{tag}-{i}"), tag, &["pause"], Some(node))?,
        )
        .await?;
    }
    let lp = ListParams::default().labels(&format!("app={tag}"));
    loop {
        let list = pods.list(&lp).await?.items;
        if list.len() == 2 && list.iter().all(running_with_ip) {
            let get = |i: usize| -> (String, String) {
                let p = list
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&format!("{tag}-{i}")))
                    .expect("pod");
                let s = p.status.as_ref().expect("status");
                let id = s.container_statuses.as_ref().expect("containers")[0]
                    .container_id
                    .clone()
                    .unwrap_or_default();
                (
                    id.trim_start_matches("kinet://").to_string(),
                    s.pod_ip.clone().unwrap_or_default(),
                )
            };
            return Ok((get(0), get(1).0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn network_setup(count: usize) -> Result<Samples> {
    use kinet_cni::{Backend, NodeNetwork, PodSpec};
    let tag = format!("kinet-benchnet{}", std::process::id());
    let node = kinet_netns::NetNs::create(&format!("{tag}-node"))?;
    let mut made = vec![node.name().to_string()];
    let result = async {
        let net = NodeNetwork::new(
            "10.98.0.0/16".parse()?,
            "192.0.2.1".parse()?,
            1500,
            Backend::HostGw,
        );
        kinet_cni::ensure_pod_bridge(&node, &net).await?;
        let mut samples = Samples::default();
        for i in 0..count {
            let t = Instant::now();
            let name = format!("{tag}-p{i}");
            let ns = kinet_netns::NetNs::create(&name)?;
            made.push(name.clone());
            let spec = PodSpec {
                ifname: "eth0".into(),
                ip: net.pod_cidr.nth(2 + i as u64).context("address")?,
                prefix: net.pod_cidr.prefix(),
                gateway: net.bridge_ip,
                host_veth: kinet_cni::host_veth_name(&name),
                mtu: net.pod_mtu(),
                route_mtu: net.pod_route_mtu(),
            };
            kinet_cni::add_pod(&node, &ns, &spec).await?;
            samples.push(t.elapsed());
        }
        anyhow::Ok(samples)
    }
    .await;
    for n in made {
        let _ = kinet_netns::delete(&n);
    }
    result
}

pub async fn run(opts: Options) -> Result<()> {
    println!(
        "pod network setup (netns + veth on cbr0 + address + routes), {} pods:",
        opts.network_pods
    );
    let setup = network_setup(opts.network_pods).await?;
    println!("  p50 {} ms   p99 {} ms", ms(setup.p50()), ms(setup.p99()));

    let c = BenchCluster::up(3)?;
    let client = c.client().await?;
    for &n in &opts.batches {
        let (wall, lat) = batch(&client, &format!("b{n}"), n).await?;
        println!(
            "{n} pods over 3 nodes: all Running in {:.2} s ({:.0} pods/s); bind -> Running+IP p50 {} ms p99 {} ms",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            ms(lat.p50()),
            ms(lat.p99())
        );
    }
    let (per_pod, agent) = memory(&c, &client, 100).await?;
    println!(
        "memory (PSS): {:.0} KiB per idle pod (its whole process trees: pause, shim, agnhost pause), {:.0} KiB per agent",
        per_pod, agent
    );

    let hg = BenchCluster::up_with(3, &["--backend", "host-gw", "--no-ingress"])?;
    let hg_client = hg.client().await?;
    let mut paths = Vec::new();
    for (cl, c) in [(&client, &c), (&hg_client, &hg)] {
        let (w1, w2) = (format!("{}-worker", c.name), format!("{}-worker2", c.name));
        paths.push(pair(cl, (&w1, &w1), "same").await?);
        paths.push(pair(cl, (&w1, &w2), "cross").await?);
    }
    // [path][rate, per CPU-second][round]
    let mut runs = vec![[Vec::new(), Vec::new()]; 1 + paths.len()];
    let mut record = |i: usize, r: [Option<f64>; 2]| (0..2).for_each(|k| runs[i][k].extend(r[k]));
    for _ in 0..opts.throughput_rounds {
        record(0, raw_veth()?);
        for (i, ((server, ip), client)) in paths.iter().enumerate() {
            record(i + 1, iperf(&target(server), &target(client), ip)?);
        }
    }
    println!(
        "TCP (iperf3, 3 s, medians of {} interleaved rounds):",
        opts.throughput_rounds
    );
    for (k, unit) in ["Gbit/s", "Gbit per CPU-second"].iter().enumerate() {
        if runs.iter().any(|r| r[k].is_empty()) {
            println!("  {unit}: missing (iperf3 did not report it)");
            continue;
        }
        let m: Vec<f64> = runs.iter_mut().map(|r| median(&mut r[k])).collect();
        println!(
            "  {unit}: raw veth pair {:.1}; VXLAN cluster: same node {:.1} ({:.2}x raw), across \
             nodes {:.1} ({:.2}x same-node); host-gw cluster: same node {:.1} ({:.2}x raw), \
             across nodes {:.1} ({:.2}x same-node)",
            m[0],
            m[1],
            m[1] / m[0],
            m[2],
            m[2] / m[1],
            m[3],
            m[3] / m[0],
            m[4],
            m[4] / m[3]
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cpu_figure_needs_both_ends_cpu() {
        let end = |cpu: serde_json::Value| json!({"sum_received": {"bits_per_second": 2e9}, "cpu_utilization_percent": cpu});
        let both = end(json!({"host_total": 50.0, "remote_total": 30.0}));
        assert_eq!(figures(&both).unwrap(), [Some(2.0), Some(2.5)]);
        for lacking in [
            json!(null),
            json!({"host_total": 50.0}),
            json!({"host_total": 0.0, "remote_total": 0.0}),
        ] {
            assert_eq!(figures(&end(lacking)).unwrap(), [Some(2.0), None]);
        }
        assert!(figures(&json!({})).is_err());
    }
}
