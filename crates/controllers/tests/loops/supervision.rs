//! Supervision: a control loop that panics is restarted and counted, while the other loops
//! and the API server carry on.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kinet_controllers::{supervise, Backoff};
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

use crate::support::wait_for;

#[tokio::test]
async fn a_panicking_loop_leaves_the_others_and_the_api_running() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let metrics = Arc::new(kinet_controllers::LoopMetrics::default());
    let _running =
        kinet_controllers::start(&api.controller_clients()?, Default::default(), &metrics);
    let quick = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    supervise("injected", Arc::clone(&metrics), quick, || async {
        panic!("injected failure")
    });
    wait_for("the injected loop restarted twice", 20, || async {
        Ok(metrics.get("injected").is_some_and(|s| s.restarts >= 2))
    })
    .await?;

    // Another loop still works: a new namespace gets its default ServiceAccount.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "after-panic"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "after-panic");
    wait_for("the default ServiceAccount", 20, || async {
        Ok(sas.get_opt("default").await?.is_some())
    })
    .await?;
    // The API server answers, and the healthy loops were never restarted.
    client.apiserver_version().await?;
    let sa = metrics.get("serviceaccount").expect("supervised");
    assert!(sa.running);
    assert_eq!(sa.restarts, 0);
    let injected = metrics.get("injected").expect("supervised");
    assert_eq!(
        injected.last_error.as_deref(),
        Some("panicked: injected failure")
    );
    assert!(metrics
        .render()
        .contains("kinet_controller_loop_restarts_total{loop=\"serviceaccount\"} 0\n"));
    Ok(())
}
