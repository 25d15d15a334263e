//! `kinet bench proxy`, end to end as a user sees it: pod Ready → first connection through its
//! ClusterIP from a pod on another node, on a real 2-node cluster holding 10 and then 10,000
//! Services (filled through the API, [`super::fill`]).
//!
//! Each sample scales a Deployment behind one Service from 0 to 1. A prober thread inside the
//! client pod's network namespace (on the other node) connects to the ClusterIP every
//! millisecond; with no endpoint the proxy refuses at once. The time runs from the watch event
//! showing the pod's Ready condition written (so the pod start is not in it) to the prober's
//! first accepted connection: the agent's status write, the endpoints loop, the watch, the
//! client node's proxy sync and the kernel. The pod's readiness probe (a TCP check) makes Ready
//! mean listening, as a user's pod would. Then the Deployment scales back to 0 and the
//! ClusterIP refuses again before the next sample.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::cluster::BenchCluster;
use super::proxy::StopOnDrop;
use super::stats::{ms, ratio, Samples};

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.39";
/// How long one step (a pod start, a proxy catching up) may take before the run fails.
const STEP: Duration = Duration::from_secs(120);

/// Runs the benchmark at each Service count (ascending), `samples` scale-ups each.
pub async fn run(counts: &[usize], samples: usize) -> Result<()> {
    let mut cluster = BenchCluster::up_with(2, &["--offline-images"])?;
    let result = measure(&cluster, counts, samples).await;
    cluster.down()?;
    result
}

async fn measure(cluster: &BenchCluster, counts: &[usize], samples: usize) -> Result<()> {
    let client = cluster.client().await?;
    let plan = kinet_cluster::nodes::recorded_plan(&cluster.cluster_dir().load_info()?);
    let [client_node, server_node] = [&plan.nodes[0], &plan.nodes[1]];
    let setup = setup(&client, &server_node.name, &client_node.name).await?;
    let prober_ns = prober_netns(cluster, &client).await?;
    let target: SocketAddr = format!("{}:80", setup.cluster_ip).parse()?;

    let mut rows = Vec::new();
    for &n in counts {
        let have = super::fill::count_services(&client).await?;
        if have > n {
            bail!("the cluster already holds {have} Services, more than {n}");
        }
        super::fill::create_services(&client, have..n).await?;
        wait_programmed(&client_node.netns, n)?;
        let [mut latency, mut to_slice, mut from_slice] = [(); 3].map(|_| Samples::default());
        let mut in_order = Vec::new();
        for _ in 0..samples {
            let hops = sample(&client, &prober_ns, target).await?;
            in_order.push(ms(hops.total));
            latency.push(hops.total);
            to_slice.push(hops.to_slice);
            from_slice.push(hops.from_slice);
        }
        println!(
            "{n} Services, each scale-up in order (ms): {}",
            in_order.join(", ")
        );
        rows.push((n, latency, to_slice, from_slice));
    }

    println!();
    println!(
        "Pod Ready → first connection through its ClusterIP from a pod on the other node, {samples} scale-ups 0→1 per size (ms):"
    );
    println!();
    println!("| Services | p50 | p99 | p50 vs the first size | Ready → slice shows it, p50 / p99 | slice → traffic, p50 / p99 |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let base = rows.first().map(|(_, s, _, _)| s.p50()).unwrap_or_default();
    for (n, s, to_slice, from_slice) in &rows {
        println!(
            "| {n} | {} | {} | {} | {} / {} | {} / {} |",
            ms(s.p50()),
            ms(s.p99()),
            ratio(s.p50(), base),
            ms(to_slice.p50()),
            ms(to_slice.p99()),
            ms(from_slice.p50()),
            ms(from_slice.p99()),
        );
    }
    Ok(())
}

struct Setup {
    cluster_ip: String,
}

/// The Deployment `web` (0 replicas, on `server_node`), its Service, and the prober pod on
/// `client_node`, once it runs.
async fn setup(client: &Client, server_node: &str, client_node: &str) -> Result<Setup> {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "nodeSelector": {"kubernetes.io/hostname": server_node},
                "containers": [{"name": "agnhost", "image": AGNHOST,
                    "command": ["/agnhost", "netexec", "--http-port=8080"],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}},
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await?;
    let prober: Pod = serde_json::from_value(json!({
        "metadata": {"name": "prober"},
        "spec": {"nodeName": client_node,
            "containers": [{"name": "agnhost", "image": AGNHOST, "command": ["/agnhost", "pause"]}]},
    }))?;
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &prober)
        .await?;
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service got no ClusterIP")?;
    Ok(Setup { cluster_ip })
}

/// The prober pod's network namespace, once the pod runs.
async fn prober_netns(cluster: &BenchCluster, client: &Client) -> Result<kinet_netns::NetNs> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + STEP;
    loop {
        let pod = pods.get("prober").await?;
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            let uid = pod.uid().context("the prober has no uid")?;
            let name = kinet_agent::pods::sandbox::netns_name(&cluster.name, &uid);
            return Ok(kinet_netns::NetNs::open(&name)?);
        }
        if Instant::now() > deadline {
            bail!("the prober pod did not run within {STEP:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the proxy in node namespace `netns` has programmed `count` ClusterIPs.
fn wait_programmed(netns: &str, count: usize) -> Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", netns, "nft", "list", "set", "ip", "kinet"])
            .arg("cluster-ips")
            .output()
            .context("ip netns exec … nft")?;
        let have = super::fill::cluster_ips_in(&String::from_utf8_lossy(&out.stdout));
        if have >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the proxy programmed {have} of {count} ClusterIPs within {STEP:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connects to `to` every millisecond until a connection is accepted: when that happened.
fn probe(to: SocketAddr, stop: &AtomicBool) -> Option<Instant> {
    while !stop.load(Ordering::Relaxed) {
        if TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Whether a connection to `to` is refused now (no endpoint).
fn refused(to: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&to, Duration::from_secs(1)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn scale(client: &Client, replicas: u32) -> Result<()> {
    Api::<Deployment>::namespaced(client.clone(), "default")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
}

/// One scale-up's times, split where the EndpointSlice (as a watch sees it) first shows the
/// pod ready: before it, the agent's status write and the endpoints loop; after it, the
/// client node's proxy and the kernel.
struct Hops {
    total: Duration,
    to_slice: Duration,
    from_slice: Duration,
}

/// The label selecting Service `web`'s EndpointSlices.
const WEB_SLICES: &str = "kubernetes.io/service-name=web";

/// When the watch first shows an EndpointSlice of Service `web` with a ready endpoint.
async fn slice_ready(client: Client, rv: String) -> Result<Instant> {
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let params = WatchParams::default().labels(WEB_SLICES);
    let mut watch = slices.watch(&params, &rv).await?.boxed();
    while let Some(event) = watch.try_next().await? {
        if let WatchEvent::Added(s) | WatchEvent::Modified(s) = event {
            let ready = s.endpoints.iter().any(|e| {
                let c = e.conditions.as_ref();
                c.and_then(|c| c.ready).unwrap_or(false)
            });
            if ready {
                return Ok(Instant::now());
            }
        }
    }
    bail!("the EndpointSlice watch ended")
}

/// One scale-up: pod Ready (as the watch shows it) → the prober's first accepted connection.
async fn sample(client: &Client, prober_ns: &kinet_netns::NetNs, to: SocketAddr) -> Result<Hops> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let params = ListParams::default().labels("app=web");
    let rv = pods.list_metadata(&params).await?.metadata.resource_version;
    let mut watch = pods
        .watch(
            &WatchParams::default().labels("app=web"),
            &rv.unwrap_or_default(),
        )
        .await?
        .boxed();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slices_rv = slices
        .list_metadata(&ListParams::default().labels(WEB_SLICES))
        .await?;
    let slice_at = tokio::spawn(slice_ready(
        client.clone(),
        slices_rv.metadata.resource_version.unwrap_or_default(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let _stopper = StopOnDrop(stop.clone());
    let prober = {
        let stop = stop.clone();
        prober_ns.spawn(move || probe(to, &stop))?
    };
    scale(client, 1).await?;
    let ready_at = tokio::time::timeout(STEP, async {
        while let Some(event) = watch.try_next().await? {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = event {
                if pod_ready(&p) {
                    return Ok(Instant::now());
                }
            }
        }
        bail!("the pod watch ended")
    })
    .await
    .context("the pod did not turn Ready")??;
    let deadline = ready_at + STEP;
    while !prober.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let reached = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the prober panicked"))??
        .context("no connection through the ClusterIP was accepted")?;
    let slice_at = tokio::time::timeout(STEP, slice_at)
        .await
        .context("no EndpointSlice showed the pod ready")???;

    // Back to 0: the next sample starts from a refusing ClusterIP.
    scale(client, 0).await?;
    let deadline = Instant::now() + STEP;
    while !pods.list_metadata(&params).await?.items.is_empty()
        || !prober_ns.run(move || refused(to))?
    {
        if Instant::now() > deadline {
            bail!("the Deployment did not scale back to 0 within {STEP:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The prober may win the race with the watches: count that as no delay.
    Ok(Hops {
        total: reached.saturating_duration_since(ready_at),
        to_slice: slice_at.saturating_duration_since(ready_at),
        from_slice: reached.saturating_duration_since(slice_at),
    })
}
