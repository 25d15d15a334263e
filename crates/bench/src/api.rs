//! `kinet bench api`: the API server under load from real HTTPS clients (kube-rs), in process
//! on loopback. Baselines from the same run: a GET /version round trip (the protocol floor) for
//! creates, serialising the same items in memory for lists, and one watcher for fan-out.
//! `--datastore both` adds creates and a list on etcd against SQLite, in alternating rounds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kinet_testkit::etcd::EtcdCluster;
use kinet_testkit::TestApi;
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
    pub datastore: Datastores,
}

/// Where a server under test keeps its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datastore {
    Sqlite,
    /// A private one-member etcd on loopback, fresh for each server.
    Etcd,
}

impl Datastore {
    fn name(self) -> &'static str {
        match self {
            Datastore::Sqlite => "SQLite",
            Datastore::Etcd => "etcd",
        }
    }

    /// Where its servers' data lives: SQLite fsyncs into the temp folder, the bench's etcd
    /// into tmpfs when there is one, which a comparison has to say.
    fn data_parent(self) -> PathBuf {
        match self {
            Datastore::Sqlite => std::env::temp_dir(),
            Datastore::Etcd => kinet_testkit::etcd::data_parent(),
        }
    }
}

/// `--datastore`: the datastore the table is measured on; `both` measures it on SQLite and
/// adds etcd against SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datastores {
    Sqlite,
    Etcd,
    Both,
}

impl FromStr for Datastores {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(Datastores::Sqlite),
            "etcd" => Ok(Datastores::Etcd),
            "both" => Ok(Datastores::Both),
            other => Err(format!("{other:?} is not sqlite, etcd or both")),
        }
    }
}

impl Datastores {
    /// The datastores measured; the table's main measurements run on the first.
    fn measured(self) -> &'static [Datastore] {
        match self {
            Datastores::Sqlite => &[Datastore::Sqlite],
            Datastores::Etcd => &[Datastore::Etcd],
            Datastores::Both => &[Datastore::Sqlite, Datastore::Etcd],
        }
    }
}

/// A fresh server under test and, on etcd, its etcd. Fields drop in order: the server stops,
/// then the etcd process is killed (by PID) and its folder removed, on errors too.
struct Server {
    api: TestApi,
    _etcd: Option<EtcdCluster>,
}

impl Server {
    async fn start(datastore: Datastore, authorization: bool) -> anyhow::Result<Server> {
        let etcd = match datastore {
            Datastore::Sqlite => None,
            // Its start waits for health with blocking sleeps.
            Datastore::Etcd => Some(tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await??),
        };
        let api =
            TestApi::start_on(etcd.as_ref().map(|e| e.url()).as_deref(), authorization).await?;
        Ok(Server { api, _etcd: etcd })
    }
}

/// Creates spread over clients: each create's latency and the wall time of them all.
#[derive(Debug, Default)]
struct Creates {
    latencies: Samples,
    wall: Duration,
}

impl Creates {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    /// The rounds' creates together: all latencies, the summed wall time.
    fn sum(rounds: impl IntoIterator<Item = Creates>) -> Creates {
        let mut all = Creates::default();
        for round in rounds {
            all.latencies.extend(round.latencies);
            all.wall += round.wall;
        }
        all
    }
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

/// Creates `count` pods named `p-<i>` spread over `clients`.
async fn create_pods(clients: &[Client], ns: &str, count: usize) -> anyhow::Result<Creates> {
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
    let mut latencies = Samples::default();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Creates {
        latencies,
        wall: started.elapsed(),
    })
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

/// Rounds of each side-by-side comparison.
const ROUNDS: usize = 3;

/// Which of two configurations goes first in `round`: they swap every round, so drift in the
/// machine's load and warm-up fall on both alike.
fn round_order(round: usize) -> [usize; 2] {
    match round % 2 {
        0 => [0, 1],
        _ => [1, 0],
    }
}

/// Measures two configurations side by side: `measure` (on a fresh server) for each, over
/// [`ROUNDS`] rounds in [`round_order`]. Returns each configuration's rounds.
async fn alternate<C, T, F, Fut>(configs: [C; 2], mut measure: F) -> anyhow::Result<[Vec<T>; 2]>
where
    C: Copy,
    F: FnMut(C) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut out = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for i in round_order(round) {
            out[i].push(measure(configs[i]).await?);
        }
    }
    Ok(out)
}

/// Creates with RBAC authorization on against off, same run: a user outside
/// `system:masters`, bound to `edit`, creates `count` pods over `clients` clients on each
/// server. Returns (off, on).
async fn authorization_overhead(
    datastore: Datastore,
    count: usize,
    clients: usize,
) -> anyhow::Result<[Creates; 2]> {
    let [off, on] = alternate([false, true], |authorization| {
        authorized_creates(datastore, authorization, count, clients)
    })
    .await?;
    Ok([Creates::sum(off), Creates::sum(on)])
}

/// One round of [`authorization_overhead`] on a fresh server.
async fn authorized_creates(
    datastore: Datastore,
    authorization: bool,
    count: usize,
    clients: usize,
) -> anyhow::Result<Creates> {
    let server = Server::start(datastore, authorization).await?;
    let admin = server.api.client()?;
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
        .map(|_| server.api.user_client())
        .collect::<anyhow::Result<_>>()?;
    create_pods(&users, "bench-authz", count).await
}

/// What one datastore round measures: creates over many clients, then the list of them.
#[derive(Debug, Default)]
struct StoreFigures {
    creates: Creates,
    /// Median time of a JSON list of all the round's pods, per round.
    lists: Samples,
}

/// SQLite against etcd, same run: the administrator creates `count` pods over `clients`
/// clients on a fresh server of each, then lists them. Returns (SQLite, etcd).
async fn datastore_comparison(count: usize, clients: usize) -> anyhow::Result<[StoreFigures; 2]> {
    let rounds = alternate([Datastore::Sqlite, Datastore::Etcd], |datastore| {
        store_round(datastore, count, clients)
    })
    .await?;
    Ok(rounds.map(|rounds| {
        let (creates, times): (Vec<_>, Vec<_>) = rounds.into_iter().unzip();
        let mut lists = Samples::default();
        for t in times {
            lists.push(t);
        }
        StoreFigures {
            creates: Creates::sum(creates),
            lists,
        }
    }))
}

/// One round of [`datastore_comparison`]: the creates and the list's median time.
async fn store_round(
    datastore: Datastore,
    count: usize,
    clients: usize,
) -> anyhow::Result<(Creates, Duration)> {
    let server = Server::start(datastore, true).await?;
    let admin = server.api.client()?;
    namespace(&admin, "bench-store").await?;
    let clients: Vec<Client> = (0..clients)
        .map(|_| server.api.client())
        .collect::<anyhow::Result<_>>()?;
    let creates = create_pods(&clients, "bench-store", count).await?;
    let path = "/api/v1/namespaces/bench-store/pods";
    let list = median_of(5, || async {
        get(&admin, path, "application/json").await.map(drop)
    })
    .await?;
    Ok((creates, list))
}

/// The table's rows of etcd against SQLite; each ratio is etcd's figure over SQLite's.
fn datastore_rows(
    clients: usize,
    objects: usize,
    [sqlite, etcd]: &[StoreFigures; 2],
) -> Vec<String> {
    let (s, e) = (&sqlite.creates.latencies, &etcd.creates.latencies);
    vec![
        format!(
            "| create on etcd, {clients} clients: objects/s | {:.0} | SQLite {:.0} | {:.2} |",
            etcd.creates.per_second(),
            sqlite.creates.per_second(),
            etcd.creates.per_second() / sqlite.creates.per_second()
        ),
        format!(
            "| create on etcd, {clients} clients: p50 / p99 (ms) | {} / {} | SQLite {} / {} | {} / {} |",
            ms(e.p50()),
            ms(e.p99()),
            ms(s.p50()),
            ms(s.p99()),
            ratio(e.p50(), s.p50()),
            ratio(e.p99(), s.p99())
        ),
        format!(
            "| list {objects} pods as JSON on etcd (ms) | {} | SQLite {} | {} |",
            ms(etcd.lists.p50()),
            ms(sqlite.lists.p50()),
            ratio(etcd.lists.p50(), sqlite.lists.p50())
        ),
    ]
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let datastore = opts.datastore.measured()[0];
    let server = Server::start(datastore, true).await?;
    let client = server.api.client()?;
    for ns in ["bench-1", "bench-n", "bench-w1", "bench-wn"] {
        namespace(&client, ns).await?;
    }
    println!(
        "kinet bench api on {}: {} objects, {} clients, {} watchers x {} events",
        datastore.name(),
        opts.objects,
        opts.clients,
        opts.watchers,
        opts.watch_events
    );
    let data: Vec<String> = opts
        .datastore
        .measured()
        .iter()
        .map(|d| format!("{} under {}", d.name(), d.data_parent().display()))
        .collect();
    println!("data: {}\n", data.join(", "));

    let mut floor = Samples::default();
    for _ in 0..2000 {
        let t = Instant::now();
        client.apiserver_version().await?;
        floor.push(t.elapsed());
    }

    let one = create_pods(std::slice::from_ref(&client), "bench-1", opts.objects).await?;
    let clients: Vec<Client> = (0..opts.clients)
        .map(|_| server.api.client())
        .collect::<anyhow::Result<_>>()?;
    let many = create_pods(&clients, "bench-n", opts.objects).await?;

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
    let [off, on] = authorization_overhead(datastore, opts.objects, opts.clients).await?;
    let stores = match opts.datastore {
        Datastores::Both => Some(datastore_comparison(opts.objects, opts.clients).await?),
        Datastores::Sqlite | Datastores::Etcd => None,
    };

    println!("| measurement | value | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| GET /version round trip p50 / p99 (ms) | {} / {} | — | 1.00 |",
        ms(floor.p50()),
        ms(floor.p99())
    );
    println!(
        "| create, 1 client: p50 / p99 (ms) | {} / {} | version p50 {} | {} |",
        ms(one.latencies.p50()),
        ms(one.latencies.p99()),
        ms(floor.p50()),
        ratio(one.latencies.p50(), floor.p50())
    );
    println!(
        "| create, 1 client: objects/s | {:.0} | | |",
        one.per_second()
    );
    println!(
        "| create, {} clients: p50 / p99 (ms) | {} / {} | version p50 {} | {} |",
        opts.clients,
        ms(many.latencies.p50()),
        ms(many.latencies.p99()),
        ms(floor.p50()),
        ratio(many.latencies.p50(), floor.p50())
    );
    println!(
        "| create, {} clients: objects/s | {:.0} | 1 client {:.0} | {:.2} |",
        opts.clients,
        many.per_second(),
        one.per_second(),
        many.per_second() / one.per_second()
    );
    println!(
        "| create as an RBAC user, {} clients: objects/s | {:.0} | authorization off {:.0} | {:.2} |",
        opts.clients,
        on.per_second(),
        off.per_second(),
        on.per_second() / off.per_second()
    );
    println!(
        "| create as an RBAC user, {} clients: p99 (ms) | {} | authorization off {} | {} |",
        opts.clients,
        ms(on.latencies.p99()),
        ms(off.latencies.p99()),
        ratio(on.latencies.p99(), off.latencies.p99())
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
    for row in stores
        .iter()
        .flat_map(|s| datastore_rows(opts.clients, opts.objects, s))
    {
        println!("{row}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_which_goes_first() {
        let firsts: Vec<usize> = (0..ROUNDS).map(|r| round_order(r)[0]).collect();
        assert_eq!(firsts, [0, 1, 0]);
    }

    #[test]
    fn datastore_flag() {
        assert_eq!(
            "both".parse::<Datastores>().map(Datastores::measured),
            Ok(&[Datastore::Sqlite, Datastore::Etcd][..])
        );
        assert_eq!(
            "etcd".parse::<Datastores>().map(Datastores::measured),
            Ok(&[Datastore::Etcd][..])
        );
        assert!("postgres".parse::<Datastores>().is_err());
    }

    #[test]
    fn etcd_rows_put_etcd_over_sqlite() {
        let figures = |create_ms: u64, wall_ms: u64, list_ms: u64| {
            let mut latencies = Samples::default();
            for _ in 0..100 {
                latencies.push(Duration::from_millis(create_ms));
            }
            let mut lists = Samples::default();
            lists.push(Duration::from_millis(list_ms));
            StoreFigures {
                creates: Creates {
                    latencies,
                    wall: Duration::from_millis(wall_ms),
                },
                lists,
            }
        };
        // SQLite: 100 creates in 0.1 s; etcd: in 0.2 s, each twice as long.
        let rows = datastore_rows(32, 100, &[figures(2, 100, 10), figures(4, 200, 30)]);
        assert_eq!(
            rows,
            [
                "| create on etcd, 32 clients: objects/s | 500 | SQLite 1000 | 0.50 |",
                "| create on etcd, 32 clients: p50 / p99 (ms) | 4.000 / 4.000 | SQLite 2.000 / 2.000 | 2.00 / 2.00 |",
                "| list 100 pods as JSON on etcd (ms) | 30.000 | SQLite 10.000 | 3.00 |",
            ]
        );
    }

    #[test]
    fn creates_sum_their_rounds() {
        let round = |n: u64| {
            let mut latencies = Samples::default();
            latencies.push(Duration::from_millis(n));
            Creates {
                latencies,
                wall: Duration::from_millis(n),
            }
        };
        let all = Creates::sum([round(1), round(3)]);
        assert_eq!(all.latencies.len(), 2);
        assert_eq!(all.wall, Duration::from_millis(4));
        assert_eq!(all.per_second(), 500.0);
    }
}
