//! `kinet bench up`: how long `kinet up` takes until the cluster is usable (it returns only
//! once the nodes are Ready, the add-ons Available and cluster DNS answers from a node), and
//! how long `kinet down` takes, for each node count; then how fast a node failure shows: a
//! worker's agent is killed and the time until its node is not Ready and until its pods leave
//! a Service's EndpointSlices is measured against the grace period set at `up`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde_json::json;

use super::cluster::BenchCluster;
use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Node counts, e.g. 1 and 3.
    pub nodes: Vec<usize>,
    /// Clusters made per node count.
    pub runs: usize,
    /// Node failures measured (each on a cluster of its own); 0 skips them.
    pub failures: usize,
    /// `--node-monitor-grace-period` of the clusters whose agents are killed.
    pub grace: Duration,
}

pub async fn run(opts: Options) -> Result<()> {
    println!(
        "kinet up until usable (DNS answering from a node), then kinet down; {} runs each:",
        opts.runs
    );
    let mut first = None;
    for &n in &opts.nodes {
        let mut up = Samples::default();
        let mut down = Samples::default();
        for _ in 0..opts.runs {
            let start = Instant::now();
            let mut c = BenchCluster::up(n)?;
            up.push(start.elapsed());
            let start = Instant::now();
            c.down()?;
            down.push(start.elapsed());
        }
        let base = *first.get_or_insert(up.p50());
        println!(
            "  {n} node(s): up p50 {} ms ({:.2}x the first count), max {} ms; down p50 {} ms",
            ms(up.p50()),
            up.p50().as_secs_f64() / base.as_secs_f64(),
            ms(up.quantile(1.0)),
            ms(down.p50())
        );
    }
    if opts.failures > 0 {
        node_failures(&opts).await?;
    }
    Ok(())
}

const APP: &str = "bench-web";

/// Kills one worker's agent per cluster and times the node turning not Ready and its
/// endpoints leaving the Service.
async fn node_failures(opts: &Options) -> Result<()> {
    let grace = format!("{}s", opts.grace.as_secs());
    println!(
        "a worker's agent killed (SIGKILL), 3 nodes, --node-monitor-grace-period {grace}; {} runs:",
        opts.failures
    );
    let mut not_ready = Samples::default();
    let mut endpoints = Samples::default();
    for _ in 0..opts.failures {
        let c = BenchCluster::up_with(3, &["--node-monitor-grace-period", &grace])?;
        let client = c.client().await?;
        let worker = format!("{}-worker", c.name);
        serve_on_every_node(&client, &worker).await?;
        let pid = kinet_cluster::nodes::agents::running(&c.cluster_dir(), &worker)
            .context("the worker's agent is not running")?;
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid)?),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        let (mut gone_ready, mut gone_endpoints) = (None, None);
        let (ready_after, endpoints_after) = loop {
            if let (Some(r), Some(e)) = (gone_ready, gone_endpoints) {
                break (r, e);
            }
            if killed.elapsed() > opts.grace * 4 {
                bail!("the killed agent's node was still Ready or served after 4 grace periods");
            }
            if gone_ready.is_none() && !node_ready(&client, &worker).await? {
                gone_ready = Some(killed.elapsed());
            }
            if gone_endpoints.is_none() && ready_endpoints_on(&client, &worker).await? == 0 {
                gone_endpoints = Some(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        not_ready.push(ready_after);
        endpoints.push(endpoints_after);
    }
    let ratio = |d: Duration| d.as_secs_f64() / opts.grace.as_secs_f64();
    println!(
        "  node not Ready: p50 {} ms ({:.2}x the grace period), max {} ms",
        ms(not_ready.p50()),
        ratio(not_ready.p50()),
        ms(not_ready.quantile(1.0))
    );
    println!(
        "  its endpoints removed: p50 {} ms ({:.2}x the grace period), max {} ms",
        ms(endpoints.p50()),
        ratio(endpoints.p50()),
        ms(endpoints.quantile(1.0))
    );
    Ok(())
}

/// A Deployment with a pod on every node and a Service over it; returns once `worker`
/// serves a ready endpoint.
async fn serve_on_every_node(client: &Client, worker: &str) -> Result<()> {
    let ns = "default";
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": APP},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }))?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await?;
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": APP},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80}]}
    }))?;
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready_endpoints_on(client, worker).await? == 0 {
        if Instant::now() > deadline {
            bail!("no ready endpoint on {worker} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn node_ready(client: &Client, node: &str) -> Result<bool> {
    let node = Api::<Node>::all(client.clone()).get(node).await?;
    Ok(node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready endpoints of the benchmark's Service on `node`.
async fn ready_endpoints_on(client: &Client, node: &str) -> Result<usize> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={APP}")))
        .await?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.node_name.as_deref() == Some(node))
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .count())
}
