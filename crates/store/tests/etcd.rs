//! The store against a real etcd on loopback (Debian's `etcd-server`), started by each test.
#![cfg(feature = "etcd")]

use std::time::{Duration, Instant};

use kinet_store::{EtcdConfig, EventType, Mutation, Options, Store, Watch};
use kinet_testkit::etcd::EtcdCluster;
use serde_json::{json, Value};

fn pod(name: &str, n: i64) -> Value {
    json!({"kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {"n": n}})
}

fn open(etcd: &EtcdCluster) -> Store {
    let config = EtcdConfig::parse(&etcd.url()).unwrap();
    Store::etcd(&config, Options::default()).unwrap()
}

async fn put(store: &Store, key: &str, n: i64) -> u64 {
    let name = key.rsplit('/').next().unwrap().to_string();
    let out = store
        .write(key, move |_| Ok(Mutation::Put(pod(&name, n))))
        .await
        .unwrap();
    assert!(out.changed);
    out.rv
}

async fn next(w: &mut Watch) -> (EventType, String, u64) {
    let e = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on");
    (e.kind, e.key, e.rv)
}

/// Polls until `f` holds (another server's write reaches this cache through its watch).
async fn poll(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw(etcd: &EtcdCluster) -> etcd_client::Client {
    etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_live_under_kube_apiservers_keys_with_the_revision_as_resource_version() {
    let etcd = EtcdCluster::start(1).unwrap();
    let store = open(&etcd);
    let mut w = store.watch("core/pods/", None).unwrap();
    let created = put(&store, "core/pods/default/web", 1).await;
    let updated = put(&store, "core/pods/default/web", 2).await;
    assert!(updated > created);
    let deleted = store
        .write("core/pods/default/web", |_| Ok(Mutation::Delete))
        .await
        .unwrap();
    assert_eq!(deleted.kind, Some(EventType::Deleted));
    let kinds: Vec<_> = [next(&mut w).await, next(&mut w).await, next(&mut w).await]
        .into_iter()
        .map(|(kind, _, rv)| (kind, rv))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventType::Added, created),
            (EventType::Modified, updated),
            (EventType::Deleted, deleted.rv)
        ]
    );
    put(&store, "apps/deployments/default/web", 1).await;

    let mut client = raw(&etcd).await;
    let resp = client
        .get(
            "/registry/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let keys: Vec<_> = resp.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
    assert_eq!(keys, ["/registry/apps/deployments/default/web"]);
    let kv = &resp.kvs()[0];
    let stored: Value = serde_json::from_slice(kv.value()).unwrap();
    assert!(
        stored["metadata"].get("resourceVersion").is_none(),
        "the revision is not stored in the value: {stored}"
    );
    let cached = store.get("apps/deployments/default/web").unwrap();
    assert_eq!(cached.rv, kv.mod_revision() as u64);
    assert_eq!(
        cached.value["metadata"]["resourceVersion"],
        kv.mod_revision().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_etcd_and_a_stale_write_is_a_conflict() {
    let etcd = EtcdCluster::start(1).unwrap();
    let (a, b) = (open(&etcd), open(&etcd));
    let mut watch_b = b.watch("core/pods/", None).unwrap();
    let rv = put(&a, "core/pods/default/web", 1).await;
    assert_eq!(
        next(&mut watch_b).await,
        (EventType::Added, "core/pods/default/web".into(), rv),
        "a write through one server reaches the other's watchers"
    );
    assert_eq!(b.get("core/pods/default/web").unwrap().rv, rv);

    // B decides on what its cache holds; A changes the object before B's compare-and-swap.
    let a2 = a.clone();
    let err = b
        .write("core/pods/default/web", move |cur| {
            let mut v = cur.unwrap().clone();
            futures::executor::block_on(put(&a2, "core/pods/default/web", 2));
            v["spec"]["n"] = json!(3);
            Ok(Mutation::Put(v))
        })
        .await
        .unwrap_err();
    assert_eq!((err.code, err.reason), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    poll("B's cache to show A's write", || {
        b.get("core/pods/default/web").unwrap().value["spec"]["n"] == 2
    })
    .await;
    assert_eq!(
        a.get("core/pods/default/web").unwrap().value["spec"]["n"],
        2
    );
    // With a fresh cache, B's next write goes through.
    put(&b, "core/pods/default/web", 4).await;
    poll("A's cache to show B's write", || {
        a.get("core/pods/default/web").unwrap().value["spec"]["n"] == 4
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_turns_older_watches_into_410_gone() {
    let etcd = EtcdCluster::start(1).unwrap();
    let store = open(&etcd);
    let first = put(&store, "core/pods/default/a", 1).await;
    let second = put(&store, "core/pods/default/a", 2).await;
    put(&store, "core/pods/default/a", 3).await;
    assert!(store.watch("", Some(first)).is_ok());
    store.compact(second).await.unwrap();
    assert_eq!(store.oldest_rv(), second);
    let err = store.watch("", Some(first)).unwrap_err();
    assert_eq!((err.code, err.reason), (410, "Expired"));
    let mut w = store.watch("", Some(second)).unwrap();
    assert_eq!(next(&mut w).await.2, second + 1);
    // etcd itself no longer has the history.
    let mut client = raw(&etcd).await;
    let gone = client
        .get(
            "/registry/pods/default/a",
            Some(etcd_client::GetOptions::new().with_revision(first as i64)),
        )
        .await;
    assert!(gone.is_err(), "revision {first} should be compacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_carries_on_from_etcds_revision() {
    let etcd = EtcdCluster::start(1).unwrap();
    let store = open(&etcd);
    for i in 0..5 {
        put(&store, &format!("core/configmaps/default/c{i}"), i).await;
    }
    let rv = store
        .write("core/configmaps/default/c0", |_| Ok(Mutation::Delete))
        .await
        .unwrap()
        .rv;
    drop(store);
    let store = open(&etcd);
    let (items, at) = store.list("core/configmaps/default/");
    assert_eq!(items.len(), 4);
    assert_eq!(at, rv, "the list is at the last revision, a delete's");
    assert_eq!(store.watch_cache_synced(), Ok(()));
    assert!(put(&store, "core/configmaps/default/c9", 9).await > rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_watches_go_on_when_a_member_dies() {
    let mut etcd = EtcdCluster::start(3).unwrap();
    let store = open(&etcd);
    let mut w = store.watch("core/pods/", None).unwrap();
    let before = put(&store, "core/pods/default/a", 1).await;
    assert_eq!(next(&mut w).await.2, before);
    etcd.kill(0);
    // A write in flight while the others elect a new leader may fail (etcd: "request timed
    // out"), as with kube-apiserver; the next ones go through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let written = store
            .write("core/pods/default/b", |_| Ok(Mutation::Put(pod("b", 1))))
            .await;
        match written {
            Ok(out) => break out.rv,
            Err(e) if e.code == 500 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("no write went through after a member died: {e:?}"),
        }
    };
    assert!(after > before);
    assert_eq!(
        next(&mut w).await,
        (EventType::Added, "core/pods/default/b".into(), after)
    );
    assert_eq!(store.probe().await, Ok(()));
}
