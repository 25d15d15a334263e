//! The endpoints loop against a real API server: Endpoints and EndpointSlices follow pods,
//! quickly; hand-written Endpoints of selector-less Services survive.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

/// Endpoints must follow pods quickly, so poll every 5ms.
async fn eventually<F, Fut, T>(what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    crate::support::poll(what, Duration::from_secs(10), Duration::from_millis(5), f).await
}

async fn set_ready(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

fn slice_ready(slices: &[EndpointSlice]) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn endpoints_and_slices_follow_pods() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let task = tokio::spawn(kinet_controllers::endpoints::run(client.clone()));
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let by_service = ListParams::default().labels("kubernetes.io/service-name=web");

    let svc = services
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))?)
        .await?;
    for (name, ip) in [("web-a", "10.244.1.2"), ("web-b", "10.244.1.3")] {
        pods.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {
            "nodeName": "node-1", "containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]}]}}))?)
            .await?;
        set_ready(&pods, name, ip, name == "web-a").await?;
    }
    let ep = eventually("endpoints with a ready and a not-ready pod", || async {
        Ok(endpoints.get_opt("web").await?.filter(|e| {
            let s = e.subsets.as_ref().and_then(|s| s.first());
            s.is_some_and(|s| {
                s.addresses.as_ref().is_some_and(|a| a.len() == 1)
                    && s.not_ready_addresses.as_ref().is_some_and(|a| a.len() == 1)
            })
        }))
    })
    .await?;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "10.244.1.2");
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8080);
    assert_eq!(
        subset.addresses.as_ref().unwrap()[0]
            .target_ref
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("web-a")
    );

    let got = eventually("slice with both pods", || async {
        let items = slices.list(&by_service).await?.items;
        Ok((slice_ready(&items).len() == 2).then_some(items))
    })
    .await?;
    assert_eq!(got.len(), 1, "one slice, no placeholder left over");
    assert_eq!(
        got[0].metadata.owner_references.as_ref().unwrap()[0].uid,
        svc.metadata.uid.clone().unwrap()
    );
    assert!(got[0].metadata.name.as_deref().unwrap().starts_with("web-"));

    // b turning Ready shows in the slice (how fast is `kinet bench`'s business, not a test's).
    set_ready(&pods, "web-b", "10.244.1.3", true).await?;
    eventually("b ready in slice", || async {
        let items = slices.list(&by_service).await?.items;
        Ok(
            (slice_ready(&items) == vec![("10.244.1.2".into(), true), ("10.244.1.3".into(), true)])
                .then_some(()),
        )
    })
    .await?;

    // Endpoints follow the slices (they are written second).
    eventually("b ready in endpoints", || async {
        let ep = endpoints.get("web").await?;
        let ready = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .count();
        Ok((ready == 2).then_some(()))
    })
    .await?;

    // Quiet when nothing changes: the resourceVersions stay put.
    let before = (
        endpoints.get("web").await?.metadata.resource_version,
        slices.list(&by_service).await?.items[0]
            .metadata
            .resource_version
            .clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = (
        endpoints.get("web").await?.metadata.resource_version,
        slices.list(&by_service).await?.items[0]
            .metadata
            .resource_version
            .clone(),
    );
    assert_eq!(before, after, "no write storm");

    // A selector-less Service keeps its hand-written Endpoints and gets no slices.
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}}),
            )?,
        )
        .await?;
    endpoints
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "ext"}, "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 5432}]}]}))?)
        .await?;

    // Deleting the Service removes its Endpoints (slices go by ownerReference GC).
    services.delete("web", &DeleteParams::default()).await?;
    eventually("endpoints of web gone", || async {
        Ok(endpoints.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ext = endpoints.get("ext").await?;
    assert_eq!(
        ext.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip,
        "192.0.2.1"
    );
    assert!(slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=ext"))
        .await?
        .items
        .is_empty());
    task.abort();
    Ok(())
}
