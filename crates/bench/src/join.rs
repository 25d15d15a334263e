//! `kinet bench join` (issue 17): how long a host takes to join, given the server URL and a
//! token, from `kinet join` until its Node is Ready (what `join` waits for), and until a pod
//! bound to it answers a request from the original node; beside, in the same run, the
//! baseline: `kinet up --nodes 1` until that cluster is usable. The host is simulated as in
//! e2e `join`: the cluster's outside namespace, behind the underlay bridge, with mount and PID
//! namespaces of its own.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kinet_testkit::host::SimulatedHost;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::cluster::BenchCluster;
use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Clusters made, each joined by one host.
    pub runs: usize,
}

pub async fn run(opts: Options) -> Result<()> {
    println!(
        "kinet up --nodes 1 until usable, then a host joins it; {} runs:",
        opts.runs
    );
    let (mut up, mut ready, mut serving) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..opts.runs {
        let start = Instant::now();
        let mut c = BenchCluster::up(1)?;
        up.push(start.elapsed());
        let (to_ready, to_serving) = join_once(&c).await?;
        ready.push(to_ready);
        serving.push(to_serving);
        c.down()?;
    }
    let row = |what: &str, s: &Samples| {
        println!(
            "  {what}: p50 {} ms ({:.2}x up), max {} ms",
            ms(s.p50()),
            s.p50().as_secs_f64() / up.p50().as_secs_f64(),
            ms(s.quantile(1.0))
        );
    };
    println!(
        "  up (baseline): p50 {} ms, max {} ms",
        ms(up.p50()),
        ms(up.quantile(1.0))
    );
    row("join until the Node is Ready", &ready);
    row("join until a pod on it serves the original node", &serving);
    Ok(())
}

/// Joins a simulated host to `c`; the time until its Node is Ready, and until an nginx pod
/// bound to it answers curl from the control-plane node. The host leaves afterwards.
async fn join_once(c: &BenchCluster) -> Result<(Duration, Duration)> {
    let info = c.cluster_dir().load_info()?;
    let plan = kinet_cluster::nodes::recorded_plan(&info);
    let server = format!("https://{}:{}", plan.underlay.gateway, info.port);
    let token = c.kinet_ok(&["token", "create", "--ttl", "10m"])?;
    let state = tempfile::Builder::new()
        .prefix("kinet-bench-joined-")
        .tempdir_in("/var/tmp")?;
    let host = SimulatedHost::start(&plan.outside_netns, c.home())?;
    let exe = std::env::current_exe()?.display().to_string();
    let env = [("KINET", exe.as_str())];
    let node = format!("{}-joined", c.name);
    let join = format!(
        "\"$KINET\" join --server {server} --token '{}' --node-name {node} --state-dir {}",
        token.trim(),
        state.path().display()
    );
    let start = Instant::now();
    let out = host.run(&join, &env);
    let ready = start.elapsed();
    if !out.status.success() {
        bail!(
            "kinet join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let serving = serve_on(c, &node, &plan.nodes[0].netns, start).await;
    let left = host.run(
        &format!("\"$KINET\" leave --state-dir {}", state.path().display()),
        &env,
    );
    if !left.status.success() {
        bail!(
            "kinet leave failed: {}",
            String::from_utf8_lossy(&left.stderr)
        );
    }
    Ok((ready, serving?))
}

/// Binds an nginx pod to `node` and waits until curl from `from_netns` gets its page; the
/// time since `start`.
async fn serve_on(
    c: &BenchCluster,
    node: &str,
    from_netns: &str,
    start: Instant,
) -> Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(c.client().await?, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bench-joined"},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = start + Duration::from_secs(120);
    loop {
        let ip = pods
            .get("bench-joined")
            .await?
            .status
            .and_then(|s| s.pod_ip);
        if let Some(ip) = ip {
            let curl = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    from_netns,
                    "curl",
                    "-sf",
                    "--max-time",
                    "1",
                ])
                .arg(format!("http://{ip}/"))
                .output()
                .context("running curl")?;
            if curl.status.success() {
                return Ok(start.elapsed());
            }
        }
        if Instant::now() > deadline {
            bail!("the pod on {node} did not serve within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
