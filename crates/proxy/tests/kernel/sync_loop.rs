//! The sync loop against an in-process API server: a Service and its
//! EndpointSlice created through the kube client reach the node namespace's
//! table; deleting them removes the rules again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::{rules_for, run_with, Applier, Metrics, SyncOptions};
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use crate::objects::{config, node, service, slice};
use crate::support::{root, Netns};

fn listing(ns: &Netns) -> String {
    // The table may not exist yet: treat that as empty.
    std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "nft", "list", "table", "ip", "kinet",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Polls the table until `pred` holds. The limit only ends a run that would never
/// converge; how fast it converges is `kinet bench proxy`'s question.
async fn wait_for(ns: &Netns, what: &str, pred: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let text = listing(ns);
        if pred(&text) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_slices_become_rules_and_go_away() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let node_ns = Netns::new("sync");

    let metrics = Arc::new(Metrics::default());
    let (tx, mut applied) = tokio::sync::watch::channel(None);
    let opts = SyncOptions {
        metrics: metrics.clone(),
        applied: Some(tx),
        ..SyncOptions::default()
    };
    let applier = Applier::new(node_ns.path(), "kinet");
    let proxy = tokio::spawn(run_with(client.clone(), node(), config(), applier, opts));
    // Aborts the loop even if an assertion below fails.
    struct Abort(tokio::task::JoinHandle<anyhow::Result<()>>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let proxy = Abort(proxy);

    // The first sync loads the skeleton (and the bootstrap `kubernetes` service).
    wait_for(&node_ns, "the table", |t| t.contains("chain services")).await;

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let created = services
        .create(&PostParams::default(), &service("default", "web", None, 80))
        .await?;
    let cluster_ip = created
        .spec
        .unwrap()
        .cluster_ip
        .expect("clusterIP allocated");
    wait_for(&node_ns, "the ClusterIP", |t| t.contains(&cluster_ip)).await;

    slices
        .create(
            &PostParams::default(),
            &slice("default", "web", &["10.244.1.20"], 8080, "TCP"),
        )
        .await?;
    wait_for(&node_ns, "the endpoint", |t| {
        t.contains(": 10.244.1.20 . 8080")
    })
    .await;
    assert!(!proxy.0.is_finished(), "the loop must keep running");

    // The published ruleset is the loaded one; rules_for cuts out this service.
    applied.changed().await?;
    let rs = applied
        .borrow_and_update()
        .clone()
        .expect("a ruleset was published");
    let own = rules_for(&rs, "default", "web");
    assert!(own.contains(": 10.244.1.20 . 8080"), "{own}");
    assert!(
        own.contains(&format!("{cluster_ip} . tcp . 80 : goto service-")),
        "{own}"
    );

    let m = metrics.snapshot();
    assert!(m.syncs >= 3, "{m:?}");
    assert_eq!(m.sync_failures, 0, "{m:?}");
    assert!(m.last_sync > Duration::ZERO, "{m:?}");
    assert!(m.last_programming_latency > Duration::ZERO, "{m:?}");

    slices.delete("web-1", &DeleteParams::default()).await?;
    wait_for(&node_ns, "the endpoint to go", |t| {
        !t.contains("10.244.1.20")
    })
    .await;
    services.delete("web", &DeleteParams::default()).await?;
    wait_for(&node_ns, "the service to go", |t| {
        !t.contains(&cluster_ip) && !t.contains("default/web/")
    })
    .await;
    Ok(())
}
