//! The public storage API against a real SQLite file.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kinet_store::{
    Backend, Change, Changes, EventType, Loaded, Mutation, Op, Options, Outcome, Store, StoreError,
    Watch,
};
use kinet_types::ApiError;
use serde_json::{json, Value};

fn obj(name: &str, n: i64) -> Value {
    json!({"kind": "Pod", "metadata": {"name": name}, "spec": {"n": n}})
}

async fn put(store: &Store, key: &str, n: i64) -> u64 {
    let name = key.rsplit('/').next().unwrap().to_string();
    let out = store
        .write(key, move |_| Ok(Mutation::Put(obj(&name, n))))
        .await
        .unwrap();
    assert!(out.changed);
    out.rv
}

async fn delete(store: &Store, key: &str) -> u64 {
    store.write(key, |_| Ok(Mutation::Delete)).await.unwrap().rv
}

async fn next(w: &mut Watch) -> Option<(EventType, String, u64)> {
    let e = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .ok()??;
    Some((e.kind, e.key, e.rv))
}

async fn nothing_ready(w: &mut Watch) -> bool {
    tokio::time::timeout(Duration::from_millis(50), w.next())
        .await
        .is_err()
}

#[tokio::test]
async fn create_update_delete_advance_rv() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    assert_eq!(store.current_rv(), 0);

    let created = store
        .write("core/pods/default/a", |cur| {
            assert!(cur.is_none());
            Ok(Mutation::Put(obj("a", 1)))
        })
        .await
        .unwrap();
    assert_eq!(
        (created.rv, created.changed, created.kind),
        (1, true, Some(EventType::Added))
    );
    let stored = created.object.unwrap();
    assert_eq!(stored.value["metadata"]["resourceVersion"], "1");
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.json).unwrap(),
        stored.value
    );

    let updated = store
        .write("core/pods/default/a", |cur| {
            let mut v = cur.unwrap().clone();
            v["spec"]["n"] = json!(2);
            Ok(Mutation::Put(v))
        })
        .await
        .unwrap();
    assert_eq!((updated.rv, updated.kind), (2, Some(EventType::Modified)));
    assert_eq!(
        store.get("core/pods/default/a").unwrap().value["spec"]["n"],
        2
    );

    let deleted = store
        .write("core/pods/default/a", |_| Ok(Mutation::Delete))
        .await
        .unwrap();
    assert_eq!((deleted.rv, deleted.kind), (3, Some(EventType::Deleted)));
    let last = deleted.object.unwrap();
    assert_eq!(last.value["metadata"]["resourceVersion"], "3");
    assert_eq!(last.value["spec"]["n"], 2);
    assert!(store.get("core/pods/default/a").is_none());
    assert_eq!(store.current_rv(), 3);
}

#[tokio::test]
async fn unchanged_and_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    put(&store, "k/a", 1).await;
    let mut w = store.watch("", Some(1)).unwrap();

    let same = store
        .write("k/a", |_| Ok(Mutation::Unchanged))
        .await
        .unwrap();
    assert_eq!((same.rv, same.changed, same.kind), (1, false, None));
    assert_eq!(same.object.unwrap().rv, 1);

    let missing = store
        .write("k/none", |_| Ok(Mutation::Unchanged))
        .await
        .unwrap();
    assert!(missing.object.is_none() && !missing.changed);

    let err = ApiError::conflict(&kinet_types::RESOURCES[0], "a");
    let want = err.clone();
    let got = store.write("k/a", move |_| Err(err)).await.unwrap_err();
    assert_eq!(got, want, "closure errors come back unchanged");

    assert_eq!(store.current_rv(), 1);
    assert_eq!(store.stats().writes, 1);
    assert_eq!(store.get("k/a").unwrap().value["spec"]["n"], 1);
    assert!(nothing_ready(&mut w).await, "no events for no-ops");
}

#[tokio::test]
async fn reopen_keeps_data_and_rv_including_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        put(&store, "k/a", 1).await;
        put(&store, "k/b", 2).await;
        assert_eq!(delete(&store, "k/b").await, 3);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.current_rv(), 3, "the delete advanced rv durably");
    let a = store.get("k/a").unwrap();
    assert_eq!((a.rv, a.value["spec"]["n"].clone()), (1, json!(1)));
    assert_eq!(a.value["metadata"]["resourceVersion"], "1");
    assert!(store.get("k/b").is_none());
    assert_eq!(put(&store, "k/c", 3).await, 4);
    assert_eq!(store.stats().objects, 2);
}

#[tokio::test]
async fn list_respects_prefix_boundaries_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    for key in [
        "core/pods/default/web-2",
        "core/pods/default/web-1",
        "core/pods/default2/x",
        "core/pods/defaul/y",
        "core/pods/default/web-3",
        "core/namespaces/default",
    ] {
        put(&store, key, 0).await;
    }
    let names = |items: &[Arc<kinet_store::Stored>]| -> Vec<String> {
        items
            .iter()
            .map(|s| s.value["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (items, rv) = store.list("core/pods/default/");
    assert_eq!(names(&items), ["web-1", "web-2", "web-3"]);
    assert_eq!(rv, 6);
    assert_eq!(store.list("core/pods/").0.len(), 5);
    assert_eq!(store.list("core/").0.len(), 6);
    assert!(store.list("core/services/").0.is_empty());

    let cases: &[(Option<&str>, usize, &[&str], bool)] = &[
        (None, 2, &["web-1", "web-2"], true),
        (Some("core/pods/default/web-2"), 2, &["web-3"], false),
        (
            Some("core/pods/default/web-1"),
            2,
            &["web-2", "web-3"],
            false,
        ),
        (Some("core/pods/default/web-3"), 2, &[], false),
        (None, 3, &["web-1", "web-2", "web-3"], false),
        (None, 0, &["web-1", "web-2", "web-3"], false),
        (Some("a"), 1, &["web-1"], true),
    ];
    for (after, limit, want, more) in cases {
        let (items, rv, has_more) = store.list_page("core/pods/default/", *after, *limit);
        assert_eq!(names(&items), *want, "after {after:?} limit {limit}");
        assert_eq!(has_more, *more, "after {after:?} limit {limit}");
        assert_eq!(rv, 6);
    }
}

#[tokio::test]
async fn watch_from_rv_replays_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    put(&store, "core/pods/ns/a", 1).await; // rv 1
    let (_, listed_at) = store.list("core/pods/ns/");
    put(&store, "core/pods/ns/b", 1).await; // rv 2
    put(&store, "core/pods/other/c", 1).await; // rv 3, other namespace
    put(&store, "core/pods/ns/a", 2).await; // rv 4
    delete(&store, "core/pods/ns/b").await; // rv 5

    let mut w = store.watch("core/pods/ns/", Some(listed_at)).unwrap();
    let mut live = store.watch("core/pods/ns/", None).unwrap();
    let mut at_current = store
        .watch("core/pods/ns/", Some(store.current_rv()))
        .unwrap();
    assert_eq!(
        next(&mut w).await,
        Some((EventType::Added, "core/pods/ns/b".into(), 2))
    );
    assert_eq!(
        next(&mut w).await,
        Some((EventType::Modified, "core/pods/ns/a".into(), 4))
    );
    let (kind, key, rv) = next(&mut w).await.unwrap();
    assert_eq!(
        (kind, key.as_str(), rv),
        (EventType::Deleted, "core/pods/ns/b", 5)
    );
    assert!(nothing_ready(&mut w).await);

    put(&store, "core/pods/ns/d", 1).await; // rv 6, live
    for watch in [&mut w, &mut live, &mut at_current] {
        assert_eq!(
            next(watch).await,
            Some((EventType::Added, "core/pods/ns/d".into(), 6))
        );
        assert!(nothing_ready(watch).await);
    }
}

#[tokio::test]
async fn deleted_event_carries_prev_and_delete_rv() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    put(&store, "k/a", 7).await;
    let mut w = store.watch("k/", None).unwrap();
    delete(&store, "k/a").await;
    let e = w.next().await.unwrap();
    assert_eq!(e.kind, EventType::Deleted);
    assert_eq!(e.object.value["metadata"]["resourceVersion"], "2");
    assert_eq!(e.prev.unwrap().rv, 1);
}

#[tokio::test]
async fn too_old_rv_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open_with(
            &path,
            Options {
                history: 3,
                ..Options::default()
            },
        )
        .unwrap();
        for n in 0..5 {
            put(&store, "k/a", n).await;
        }
        // rv 1 and 2 were evicted: resuming after 2 still works, after 1 does not.
        assert!(store.watch("", Some(2)).is_ok());
        let err = store.watch("", Some(1)).err().unwrap();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert_eq!(err.to_status()["reason"], "Expired");
    }
    // After a restart the history is empty: only the current rv can be resumed.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.oldest_rv(), 5);
    assert!(store.watch("", Some(5)).is_ok());
    assert_eq!(store.watch("", Some(4)).err().unwrap().code, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rvs = Vec::new();
            for i in 0..100 {
                let key = format!("k/{t}/{i}");
                let out = store
                    .write(&key, move |_| Ok(Mutation::Put(json!({"i": i}))))
                    .await;
                rvs.push(out.unwrap().rv);
            }
            rvs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 3200, "every write got its own rv");
    assert_eq!(all.last(), Some(&3200));
    let stats = store.stats();
    assert_eq!((stats.writes, stats.objects, stats.rv), (3200, 3200, 3200));
    assert!(stats.commits < stats.writes / 2, "group commit: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                store
                    .write("counter", |cur| {
                        let n = cur.map_or(0, |v| v["n"].as_i64().unwrap());
                        Ok(Mutation::Put(json!({"n": n + 1})))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get("counter").unwrap().value["n"], 800);
}

#[tokio::test]
async fn watch_ends_when_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut w = store.watch("", None).unwrap();
    drop(store);
    assert!(w.next().await.is_none());
}

/// A memory backend whose commits can be made to fail or to wait for the test.
#[derive(Default)]
struct Memory {
    rev: std::sync::Mutex<u64>,
    fail: std::sync::atomic::AtomicBool,
    commits: std::sync::atomic::AtomicUsize,
    /// Told when a commit starts; the commit then waits for the second channel.
    gate: Option<(
        std::sync::mpsc::Sender<()>,
        std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    )>,
    subscriber: std::sync::Mutex<Option<std::sync::mpsc::Sender<Vec<Change>>>>,
    /// Other API servers commit here too ([`Memory::commit_as_peer`]).
    peers: bool,
}

impl Memory {
    /// Another API server's commit of `key`: storage has it at once, the change stream
    /// delivers it only after `delay`.
    fn commit_as_peer(&self, key: &str, delay: Duration) -> u64 {
        let mut rev = self.rev.lock().unwrap();
        *rev += 1;
        let change = Change {
            rev: *rev,
            key: key.to_string(),
            value: Some(serde_json::to_vec(&obj("peer", 1)).unwrap().into()),
            prev: None,
        };
        let tx = self.subscriber.lock().unwrap().clone().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = tx.send(vec![change]);
        });
        *rev
    }
}

struct Live(std::sync::mpsc::Receiver<Vec<Change>>);

impl Changes for Live {
    fn next(&mut self) -> Result<Vec<Change>, StoreError> {
        self.0.recv().map_err(|_| StoreError::Closed)
    }
}

impl Backend for Memory {
    fn load_all(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            rows: vec![],
            rev: *self.rev.lock().unwrap(),
        })
    }
    fn commit(&self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        if let Some((entered, release)) = &self.gate {
            entered.send(()).unwrap();
            release.lock().unwrap().recv().unwrap();
        }
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut rev = self.rev.lock().unwrap();
        let changes: Vec<Change> = ops
            .iter()
            .map(|op| {
                *rev += 1;
                let value = match op {
                    Op::Put { value, .. } => Some(value.clone()),
                    Op::Delete { .. } => None,
                };
                Change {
                    rev: *rev,
                    key: op.key().to_string(),
                    value,
                    prev: None,
                }
            })
            .collect();
        let outcomes = changes.iter().map(|c| Outcome::Done(c.rev)).collect();
        if let Some(tx) = &*self.subscriber.lock().unwrap() {
            let _ = tx.send(changes);
        }
        Ok(outcomes)
    }
    fn watch(&self, _after: u64) -> Result<Box<dyn Changes>, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.subscriber.lock().unwrap() = Some(tx);
        Ok(Box::new(Live(rx)))
    }
    fn compact(&self, _rev: u64) -> Result<(), StoreError> {
        Ok(())
    }
    fn probe(&self) -> Result<u64, StoreError> {
        Ok(*self.rev.lock().unwrap())
    }
    fn shared(&self) -> bool {
        self.peers
    }
    fn close(&self) {
        self.subscriber.lock().unwrap().take();
    }
}

/// A shared handle, so the test keeps control of a backend the store owns.
struct Shared(Arc<Memory>);

impl Backend for Shared {
    fn load_all(&self) -> Result<Loaded, StoreError> {
        self.0.load_all()
    }
    fn commit(&self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        self.0.commit(ops)
    }
    fn watch(&self, after: u64) -> Result<Box<dyn Changes>, StoreError> {
        self.0.watch(after)
    }
    fn compact(&self, rev: u64) -> Result<(), StoreError> {
        self.0.compact(rev)
    }
    fn probe(&self) -> Result<u64, StoreError> {
        self.0.probe()
    }
    fn shared(&self) -> bool {
        self.0.shared()
    }
    fn close(&self) {
        self.0.close()
    }
}

#[tokio::test]
async fn failed_commit_changes_nothing_visible() {
    let backend = Arc::new(Memory {
        rev: std::sync::Mutex::new(10),
        fail: true.into(),
        ..Default::default()
    });
    let store = Store::with_backend(Shared(backend.clone()), Options::default()).unwrap();
    let mut w = store.watch("", None).unwrap();

    let err = store
        .write("k/a", |_| Ok(Mutation::Put(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(err.code, 500);
    assert!(err.message.contains("disk full"), "{}", err.message);
    assert!(store.get("k/a").is_none());
    assert_eq!(store.current_rv(), 10);
    assert_eq!(store.stats().commits, 0);
    assert!(nothing_ready(&mut w).await);
    let unhealthy = store.probe().await.unwrap_err();
    assert!(unhealthy.contains("disk full"), "{unhealthy}");

    backend
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        put(&store, "k/a", 1).await,
        11,
        "the failed rv is reused, none is skipped"
    );
    assert_eq!(
        next(&mut w).await,
        Some((EventType::Added, "k/a".into(), 11))
    );
    assert_eq!(backend.commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(store.probe().await, Ok(()), "a good commit clears it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_waits_until_the_cache_shows_what_another_server_committed() {
    let backend = Arc::new(Memory {
        peers: true,
        ..Default::default()
    });
    let store = Store::with_backend(Shared(backend.clone()), Options::default()).unwrap();
    // This server's own failed commit makes it unhealthy, but storage still answers reads.
    backend
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let put = store.write("k/own", |_| Ok(Mutation::Put(json!({}))));
    assert_eq!(put.await.unwrap_err().code, 500);
    assert!(store.probe().await.is_err());
    let rev = backend.commit_as_peer("k/peer", Duration::from_millis(300));
    assert!(
        store.get("k/peer").is_none(),
        "the change is still on its way"
    );
    store.sync().await.unwrap();
    assert_eq!(store.get("k/peer").map(|s| s.rv), Some(rev));
}

#[tokio::test]
async fn health_checks_pass_on_a_working_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    put(&store, "k/a", 1).await;
    assert_eq!(store.probe().await, Ok(()));
    assert_eq!(store.watch_cache_synced(), Ok(()));
}

#[tokio::test]
async fn in_memory_store() {
    let store = Store::open(std::path::Path::new(":memory:")).unwrap();
    assert_eq!(put(&store, "k/a", 1).await, 1);
    assert_eq!(store.list("k/").0.len(), 1);
}

/// The store's half of "acknowledged only after the fsync": no caller, reader or watcher learns
/// of a write while the backend's commit has not returned. (SQLite's half, that a WAL commit
/// with `synchronous=FULL` returns only after the WAL is fsynced, is its documented contract,
/// checked by the backend's `uses_wal_and_full_sync`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_before_the_commit_returns() {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let backend = Memory {
        gate: Some((entered_tx, std::sync::Mutex::new(release_rx))),
        ..Default::default()
    };
    let store = Store::with_backend(backend, Options::default()).unwrap();
    let mut w = store.watch("", None).unwrap();
    let mut write = Box::pin(store.write("k/a", |_| Ok(Mutation::Put(json!({})))));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // The first poll queues the write; the writer then enters the commit and stays there.
    assert!(write.as_mut().poll(&mut cx).is_pending());
    tokio::task::spawn_blocking(move || entered.recv().unwrap())
        .await
        .unwrap();
    // Had the writer answered before committing, the answer would be waiting now.
    assert!(
        write.as_mut().poll(&mut cx).is_pending(),
        "acknowledged before the commit returned"
    );
    assert!(store.get("k/a").is_none());
    assert_eq!(store.current_rv(), 0);
    assert!(nothing_ready(&mut w).await);

    release.send(()).unwrap();
    assert_eq!(write.await.unwrap().rv, 1);
    assert_eq!(
        next(&mut w).await,
        Some((EventType::Added, "k/a".into(), 1))
    );
}
