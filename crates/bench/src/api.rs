//! `kinet bench api`: the API server under load from real HTTPS clients (kube-rs), in process
//! on loopback. Baselines from the same run: a GET /version round trip (the protocol floor) for
//! creates, serialising the same items in memory for lists, and one watcher for fan-out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::json;

use super::stats::{ms, ratio, Samples};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub objects: usize,
    pub clients: usize,
    pub watchers: usize,
    pub watch_events: usize,
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.39", "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080}]}]},
    }))
    .expect("a valid pod")
}

pub(super) async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Creates `count` pods named `p-<i>` spread over `clients`; returns per-create latencies and
/// the wall time.
async fn create_pods(
    clients: &[Client],
    ns: &str,
    count: usize,
) -> anyhow::Result<(Samples, Duration)> {
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(k, client)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            let n = clients.len();
            tokio::spawn(async move {
                let mut samples = Samples::default();
                for i in (k..count).step_by(n) {
                    let t = Instant::now();
                    api.create(&PostParams::default(), &pod(&format!("p-{i}")))
                        .await?;
                    samples.push(t.elapsed());
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, started.elapsed()))
}

async fn get(client: &Client, path: &str, accept: &str) -> anyhow::Result<String> {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// Median wall time of `runs` calls of `f`.
async fn median_of<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples = Samples::default();
    for _ in 0..runs {
        let t = Instant::now();
        f().await?;
        samples.push(t.elapsed());
    }
    Ok(samples.p50())
}

/// Opens `watchers` watches, then creates `events` pods one by one and measures, for every
/// watcher and pod, the time from sending the create to the ADDED event arriving.
async fn watch_fanout(
    clients: &[Client],
    ns: &str,
    watchers: usize,
    events: usize,
) -> anyhow::Result<Samples> {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let api: Api<Pod> = Api::namespaced(clients[w % clients.len()].clone(), ns);
        let (received, ready) = (received.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = api.watch(&WatchParams::default(), "0").await?.boxed();
            ready.add_permits(1);
            let mut seen = 0;
            while let Some(event) = stream.try_next().await? {
                if let WatchEvent::Added(p) = event {
                    received
                        .lock()
                        .unwrap()
                        .push((p.metadata.name.unwrap_or_default(), Instant::now()));
                    seen += 1;
                    if seen == events {
                        break;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    let _ = ready.acquire_many(watchers as u32).await?;
    // Let every watch request reach the server before the first write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api: Api<Pod> = Api::namespaced(clients[0].clone(), ns);
    for i in 0..events {
        let name = format!("w-{i}");
        sent.lock().unwrap().insert(name.clone(), Instant::now());
        api.create(&PostParams::default(), &pod(&name)).await?;
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .context("watchers did not see every event")???;
    }
    let sent = sent.lock().unwrap();
    let mut samples = Samples::default();
    for (name, at) in received.lock().unwrap().iter() {
        if let Some(start) = sent.get(name) {
            samples.push(at.saturating_duration_since(*start));
        }
    }
    Ok(samples)
}

/// Creates with RBAC authorization on against off, same run: a user outside
/// `system:masters`, bound to `edit`, creates `count` pods over `clients` clients on each
/// server. The two modes alternate over `ROUNDS` rounds, each on a fresh server and in
/// swapped order, so drift in the machine's load and warm-up fall on both alike. Returns
/// (off, on) latencies and summed wall times.
async fn authorization_overhead(
    count: usize,
    clients: usize,
) -> anyhow::Result<[(Samples, Duration); 2]> {
    const ROUNDS: usize = 3;
    let mut out: [(Samples, Duration); 2] = Default::default();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for authorization in order {
            let (samples, wall) = authorized_creates(authorization, count, clients).await?;
            let slot = &mut out[usize::from(authorization)];
            slot.0.extend(samples);
            slot.1 += wall;
        }
    }
    Ok(out)
}

/// One round of [`authorization_overhead`] on a fresh server.
async fn authorized_creates(
    authorization: bool,
    count: usize,
    clients: usize,
) -> anyhow::Result<(Samples, Duration)> {
    let server = match authorization {
        true => kinet_testkit::TestApi::start().await?,
        false => kinet_testkit::TestApi::without_authorization().await?,
    };
    let admin = server.client()?;
    namespace(&admin, "bench-authz").await?;
    let binding = serde_json::from_value(json!({
        "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": kinet_testkit::USER}],
    }))?;
    Api::<ClusterRoleBinding>::all(admin)
        .create(&PostParams::default(), &binding)
        .await?;
    let users: Vec<Client> = (0..clients)
        .map(|_| server.user_client())
        .collect::<anyhow::Result<_>>()?;
    create_pods(&users, "bench-authz", count).await
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let server = kinet_testkit::TestApi::start().await?;
    let client = server.client()?;
    for ns in ["bench-1", "bench-n", "bench-w1", "bench-wn"] {
        namespace(&client, ns).await?;
    }
    println!(
        "kinet bench api: {} objects, {} clients, {} watchers x {} events\n",
        opts.objects, opts.clients, opts.watchers, opts.watch_events
    );

    let mut floor = Samples::default();
    for _ in 0..2000 {
        let t = Instant::now();
        client.apiserver_version().await?;
        floor.push(t.elapsed());
    }

    let (one, one_wall) =
        create_pods(std::slice::from_ref(&client), "bench-1", opts.objects).await?;
    let clients: Vec<Client> = (0..opts.clients)
        .map(|_| server.client())
        .collect::<anyhow::Result<_>>()?;
    let (many, many_wall) = create_pods(&clients, "bench-n", opts.objects).await?;
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();

    let path = "/api/v1/namespaces/bench-1/pods";
    let json_list = median_of(5, || async {
        get(&client, path, "application/json").await.map(drop)
    })
    .await?;
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table_list = median_of(5, || async {
        get(&client, path, table_accept).await.map(drop)
    })
    .await?;
    let items: serde_json::Value =
        serde_json::from_str(&get(&client, path, "application/json").await?)?;
    let serialise = median_of(5, || async {
        serde_json::to_vec(&items).map(drop).map_err(Into::into)
    })
    .await?;

    let single = watch_fanout(
        std::slice::from_ref(&client),
        "bench-w1",
        1,
        opts.watch_events,
    )
    .await?;
    let fanout = watch_fanout(&clients, "bench-wn", opts.watchers, opts.watch_events).await?;
    let [(off, off_wall), (on, on_wall)] =
        authorization_overhead(opts.objects, opts.clients).await?;

    println!("| measurement | value | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| GET /version round trip p50 / p99 (ms) | {} / {} | — | 1.00 |",
        ms(floor.p50()),
        ms(floor.p99())
    );
    println!(
        "| create, 1 client: p50 / p99 (ms) | {} / {} | version p50 {} | {} |",
        ms(one.p50()),
        ms(one.p99()),
        ms(floor.p50()),
        ratio(one.p50(), floor.p50())
    );
    println!(
        "| create, 1 client: objects/s | {:.0} | | |",
        rate(one.len(), one_wall)
    );
    println!(
        "| create, {} clients: p50 / p99 (ms) | {} / {} | version p50 {} | {} |",
        opts.clients,
        ms(many.p50()),
        ms(many.p99()),
        ms(floor.p50()),
        ratio(many.p50(), floor.p50())
    );
    println!(
        "| create, {} clients: objects/s | {:.0} | 1 client {:.0} | {:.2} |",
        opts.clients,
        rate(many.len(), many_wall),
        rate(one.len(), one_wall),
        rate(many.len(), many_wall) / rate(one.len(), one_wall)
    );
    println!(
        "| create as an RBAC user, {} clients: objects/s | {:.0} | authorization off {:.0} | {:.2} |",
        opts.clients,
        rate(on.len(), on_wall),
        rate(off.len(), off_wall),
        rate(on.len(), on_wall) / rate(off.len(), off_wall)
    );
    println!(
        "| create as an RBAC user, {} clients: p99 (ms) | {} | authorization off {} | {} |",
        opts.clients,
        ms(on.p99()),
        ms(off.p99()),
        ratio(on.p99(), off.p99())
    );
    println!(
        "| list {} pods as JSON (ms) | {} | in-memory serialise {} | {} |",
        opts.objects,
        ms(json_list),
        ms(serialise),
        ratio(json_list, serialise)
    );
    println!(
        "| list {} pods as Table (ms) | {} | in-memory serialise {} | {} |",
        opts.objects,
        ms(table_list),
        ms(serialise),
        ratio(table_list, serialise)
    );
    println!(
        "| watch delivery, 1 watcher: p50 / p99 (ms) | {} / {} | — | 1.00 |",
        ms(single.p50()),
        ms(single.p99())
    );
    println!(
        "| watch delivery, {} watchers: p50 / p99 (ms) | {} / {} | 1 watcher p99 {} | {} |",
        opts.watchers,
        ms(fanout.p50()),
        ms(fanout.p99()),
        ms(single.p99()),
        ratio(fanout.p99(), single.p99())
    );
    Ok(())
}
