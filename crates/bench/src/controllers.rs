//! `kinet bench controllers`: the control loops against an in-process API server. Measures a
//! 1,000-replica Deployment until every pod is bound (wall time and the process's CPU time), and
//! the latency from a pod turning Ready to its EndpointSlice listing it as ready, with 1,000
//! Services present. Baselines from the same run: creating the same pods directly through the
//! API, and a pod status update's round trip.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::json;

use super::stats::{ms, ratio, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    pub replicas: usize,
    pub services: usize,
    pub samples: usize,
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

async fn register_nodes(client: &Client, count: usize) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-node-{i}")},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
    }
    Ok(())
}

fn pod_template(app: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

async fn count_bound(pods: &Api<Pod>) -> anyhow::Result<usize> {
    let list = pods.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .count())
}

async fn deployment_to_bound(
    client: &Client,
    replicas: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let ns = "bench-deploy";
    super::api::namespace(client, ns).await?;
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}}, "template": pod_template("big")},
    }))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (cpu, started) = (cpu_time(), Instant::now());
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await?;
    let deadline = started + Duration::from_secs(120);
    while count_bound(&pods).await? < replicas {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pods were not all bound within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((started.elapsed(), cpu_time() - cpu))
}

/// Creates `count` pods straight through the API, one client: the baseline for the rollout.
async fn direct_pods(client: &Client, count: usize) -> anyhow::Result<Duration> {
    let ns = "bench-direct";
    super::api::namespace(client, ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    for i in 0..count {
        let mut pod = pod_template("direct");
        pod["metadata"]["name"] = json!(format!("d-{i}"));
        pods.create(&PostParams::default(), &serde_json::from_value(pod)?)
            .await?;
    }
    Ok(started.elapsed())
}

/// Marks a pod Running and Ready with an IP, as a node agent would.
async fn make_ready(pods: &Api<Pod>, name: &str, ip: &str) -> anyhow::Result<()> {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

async fn endpoint_latency(
    client: &Client,
    services: usize,
    samples: usize,
) -> anyhow::Result<(Samples, Samples)> {
    let ns = "bench-ep";
    super::api::namespace(client, ns).await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for i in 0..services {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("s-{i}")},
            "spec": {"selector": {"app": format!("s-{i}")}, "ports": [{"port": 80}]},
        }))?;
        svcs.create(&PostParams::default(), &svc).await?;
    }
    for i in 0..samples {
        let mut pod = pod_template(&format!("s-{i}"));
        pod["metadata"]["name"] = json!(format!("p-{i}"));
        pod["spec"]["nodeName"] = json!("bench-node-0");
        pods.create(&PostParams::default(), &serde_json::from_value(pod)?)
            .await?;
    }
    // Let the endpoint controller settle the initial (not ready) state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut watch = slices.watch(&WatchParams::default(), "0").await?.boxed();
    // Drain the initial ADDED events.
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(300), watch.try_next()).await
    {}
    let (mut latency, mut patch_rtt) = (Samples::default(), Samples::default());
    for i in 0..samples {
        let ip = format!("10.244.{}.{}", 1 + i / 250, 1 + i % 250);
        let started = Instant::now();
        make_ready(&pods, &format!("p-{i}"), &ip).await?;
        patch_rtt.push(started.elapsed());
        let service = format!("s-{i}");
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.try_next()).await??;
            let Some(WatchEvent::Added(slice) | WatchEvent::Modified(slice)) = event else {
                continue;
            };
            let for_service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(kinet_controllers::endpoints::slices::SERVICE_NAME_LABEL))
                == Some(&service);
            let ready = slice.endpoints.iter().any(|e| {
                e.addresses.contains(&ip)
                    && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
            });
            if for_service && ready {
                latency.push(started.elapsed());
                break;
            }
        }
    }
    Ok((latency, patch_rtt))
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let server = kinet_testkit::TestApi::start().await?;
    let client = server.client()?;
    // The bench's nodes have no agent to heartbeat: a day's grace keeps them Ready.
    let config = kinet_controllers::ControllerConfig {
        node_monitor_grace_period: std::time::Duration::from_secs(86_400),
        ..Default::default()
    };
    let loops = std::sync::Arc::new(kinet_controllers::LoopMetrics::default());
    let _running = kinet_controllers::start(&server.controller_clients()?, config, &loops);
    register_nodes(&client, 3).await?;
    println!(
        "kinet bench controllers: {} replicas, {} services, {} readiness samples\n",
        opts.replicas, opts.services, opts.samples
    );

    let direct = direct_pods(&client, opts.replicas).await?;
    let (rollout, cpu) = deployment_to_bound(&client, opts.replicas).await?;
    let (latency, rtt) = endpoint_latency(&client, opts.services, opts.samples).await?;
    let restarts = loops.render();
    anyhow::ensure!(
        !restarts
            .lines()
            .any(|l| l.starts_with("kinet_controller_loop_restarts_total") && !l.ends_with(" 0")),
        "a control loop failed during the bench:\n{restarts}"
    );

    println!("| measurement | value | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| {}-replica Deployment until all pods bound (ms) | {} | {} direct pod creates {} | {} |",
        opts.replicas,
        ms(rollout),
        opts.replicas,
        ms(direct),
        ratio(rollout, direct)
    );
    println!(
        "| CPU time of API server + controllers during it (ms) | {} | wall {} | {} |",
        ms(cpu),
        ms(rollout),
        ratio(cpu, rollout)
    );
    println!("| pod Ready → EndpointSlice ready, {} Services: p50 / p99 (ms) | {} / {} | status patch p50 {} | {} |", opts.services, ms(latency.p50()), ms(latency.p99()), ms(rtt.p50()), ratio(latency.p50(), rtt.p50()));
    Ok(())
}
