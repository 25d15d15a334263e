//! The Event recorder against a real API server: one Event per distinct report, repeats
//! aggregated into `count`.

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kinet_controllers::events::{object_ref, EventType, Recorder};
use kube::api::{ListParams, PostParams};
use kube::Api;

#[tokio::test]
async fn repeats_bump_count_and_distinct_reports_get_their_own_event() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "cfg"}}))?,
        )
        .await?;
    let recorder = Recorder::new(client.clone(), "test-controller");
    let r = object_ref(&cm);
    recorder
        .publish(&r, EventType::Normal, "Synced", "all good")
        .await;
    recorder
        .publish(&r, EventType::Normal, "Synced", "all good")
        .await;
    recorder
        .publish(&r, EventType::Normal, "Synced", "all good")
        .await;
    recorder
        .publish(&r, EventType::Warning, "Failed", "oops")
        .await;

    let events: Api<Event> = Api::namespaced(client, "default");
    let mut list = events.list(&ListParams::default()).await?.items;
    list.sort_by_key(|e| e.reason.clone());
    assert_eq!(list.len(), 2, "{list:?}");
    let failed = &list[0];
    let synced = &list[1];
    assert_eq!(synced.reason.as_deref(), Some("Synced"));
    assert_eq!(synced.count, Some(3));
    assert_eq!(synced.type_.as_deref(), Some("Normal"));
    assert!(synced.metadata.name.as_deref().unwrap().starts_with("cfg."));
    assert_eq!(synced.involved_object.uid, cm.metadata.uid);
    assert_eq!(synced.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(
        synced.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("test-controller")
    );
    assert_eq!(
        synced.reporting_component.as_deref(),
        Some("test-controller")
    );
    assert!(synced.first_timestamp.is_some() && synced.last_timestamp >= synced.first_timestamp);
    assert_eq!(failed.count, Some(1));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    Ok(())
}
