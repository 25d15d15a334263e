//! `kinet bench failover` (issue 17): a one-node cluster with two API servers on one etcd
//! (`--api-servers 2`). Each run kills -9 the server the node's agent is connected to, then
//! measures, from the kill: the other server answering a list, and a pod bound to the node
//! Running and Ready (the agent failed over, saw the pod and started it). The baseline, in the
//! same run: the same pod with both servers up. `kinet up` brings the killed server back
//! between runs.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kinet_testkit::etcd::EtcdCluster;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::cluster::BenchCluster;
use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Kills measured.
    pub runs: usize,
}

pub async fn run(opts: Options) -> Result<()> {
    let etcd = EtcdCluster::start(1)?;
    let c = BenchCluster::up_with(1, &["--datastore", &etcd.url(), "--api-servers", "2"])?;
    println!(
        "kill -9 of the API server the agent uses, 1 node, 2 servers on etcd; {} runs:",
        opts.runs
    );
    let (mut baseline, mut api, mut pod) =
        (Samples::default(), Samples::default(), Samples::default());
    for run in 0..opts.runs {
        let used = agent_server(&c)?;
        let other = 1 - used;
        let client = server_client(&c, other).await?;
        let start = Instant::now();
        start_pod(&client, &c, &format!("baseline-{run}")).await?;
        baseline.push(start.elapsed());

        let pid = c
            .cluster_dir()
            .read_pid(used)
            .context("the server's PID file")?;
        let start = Instant::now();
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        if !killed.success() {
            bail!("kill -9 {pid} failed");
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        while pods.list(&ListParams::default().limit(1)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        api.push(start.elapsed());
        start_pod(&client, &c, &format!("after-kill-{run}")).await?;
        pod.push(start.elapsed());
        c.kinet_ok(&["up"])?;
    }
    let row = |what: &str, s: &Samples| {
        println!(
            "  {what}: p50 {} ms ({:.2}x baseline), max {} ms",
            ms(s.p50()),
            s.p50().as_secs_f64() / baseline.p50().as_secs_f64(),
            ms(s.quantile(1.0))
        );
    };
    println!(
        "  a pod bound to the node until Ready, both servers up (baseline): p50 {} ms, max {} ms",
        ms(baseline.p50()),
        ms(baseline.quantile(1.0))
    );
    row("kill until the other server answers a list", &api);
    row("kill until a pod bound to the node is Ready", &pod);
    Ok(())
}

/// The index of the server the node's agent is connected to (`ss` in its namespace).
fn agent_server(c: &BenchCluster) -> Result<usize> {
    let info = c.cluster_dir().load_info()?;
    let plan = kinet_cluster::nodes::recorded_plan(&info);
    let filter = format!("( dport = :{} )", info.port);
    let out = Command::new("ip")
        .args(["netns", "exec", &plan.nodes[0].netns])
        .args(["ss", "-Htn", "state", "established", &filter])
        .output()
        .context("running ss")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let peers: Vec<IpAddr> = text
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)?
                .rsplit_once(':')?
                .0
                .parse()
                .ok()
        })
        .collect();
    info.api_servers()
        .iter()
        .find(|s| s.underlay.is_some_and(|a| peers.contains(&a.ip())))
        .map(|s| s.index)
        .context("the agent has no connection to an API server")
}

/// A client of server `index` only (the kubeconfig's credentials, its loopback address).
async fn server_client(c: &BenchCluster, index: usize) -> Result<kube::Client> {
    let info = c.cluster_dir().load_info()?;
    let kc = kube::config::Kubeconfig::read_from(c.dir().join("kubeconfig"))?;
    let mut cfg = kube::config::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.cluster_url = info.api_servers()[index].url().parse()?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Creates an nginx pod bound to the node and waits until it is Ready; then deletes it.
async fn start_pod(client: &kube::Client, c: &BenchCluster, name: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": format!("{}-control-plane", c.name),
            "containers": [{"name": "web", "image": "nginx"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = pods
            .get(name)
            .await
            .ok()
            .and_then(|p| p.status)
            .is_some_and(|s| {
                s.conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("pod {name} was not Ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await?;
    Ok(())
}
