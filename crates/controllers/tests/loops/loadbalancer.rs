//! The LoadBalancer allocator against a real in-process API server.

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kinet_controllers::loadbalancer::{self, status_ip};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{eventually, spawn_loop, wait_for};

async fn create_svc(
    client: &Client,
    name: &str,
    ty: &str,
    asked: Option<&str>,
) -> anyhow::Result<()> {
    let mut spec = json!({"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]});
    if let Some(ip) = asked {
        spec["loadBalancerIP"] = json!(ip);
    }
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )?;
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await?;
    Ok(())
}

async fn ip_of(svcs: &Api<Service>, name: &str) -> anyhow::Result<Option<String>> {
    Ok(status_ip(&svcs.get(name).await?).map(|ip| ip.to_string()))
}

async fn set_pool(client: &Client, addresses: &str) -> anyhow::Result<()> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": loadbalancer::POOL_CONFIGMAP, "namespace": loadbalancer::POOL_NAMESPACE},
        "data": {loadbalancer::POOL_KEY: addresses},
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), loadbalancer::POOL_NAMESPACE)
        .patch(
            loadbalancer::POOL_CONFIGMAP,
            &PatchParams::apply("test").force(),
            &Patch::Apply(cm),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn assigns_honours_releases_and_survives_restart() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    set_pool(&client, "172.18.255.192-172.18.255.194").await?;
    let task = spawn_loop(&client, loadbalancer::run);

    create_svc(&client, "a", "LoadBalancer", None).await?;
    create_svc(&client, "asks", "LoadBalancer", Some("172.18.255.194")).await?;
    create_svc(&client, "plain", "ClusterIP", None).await?;
    let a = eventually("a gets an address", || async { ip_of(&svcs, "a").await }).await?;
    assert_eq!(a, "172.18.255.192");
    let asks = eventually("asks gets its address", || async {
        ip_of(&svcs, "asks").await
    })
    .await?;
    assert_eq!(asks, "172.18.255.194");
    assert_eq!(ip_of(&svcs, "plain").await?, None);

    // Turning a into a ClusterIP Service releases its address; b takes the lowest free one.
    // (The API server does not drop type-dependent fields itself yet, so the patch does.)
    let to_cluster_ip = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null,
                                        "allocateLoadBalancerNodePorts": null, "ports": [{"port": 80}]}});
    svcs.patch("a", &PatchParams::default(), &Patch::Merge(to_cluster_ip))
        .await?;
    wait_for("a released", 10, || async {
        Ok(ip_of(&svcs, "a").await?.is_none())
    })
    .await?;
    create_svc(&client, "b", "LoadBalancer", None).await?;
    let b = eventually("b gets an address", || async { ip_of(&svcs, "b").await }).await?;
    assert_eq!(b, "172.18.255.192");

    // Restart: held addresses are read back from the Services, not reassigned.
    task.abort();
    create_svc(&client, "c", "LoadBalancer", None).await?;
    let task = spawn_loop(&client, loadbalancer::run);
    let c = eventually("c gets an address", || async { ip_of(&svcs, "c").await }).await?;
    assert_eq!(c, "172.18.255.193");
    assert_eq!(ip_of(&svcs, "b").await?.as_deref(), Some("172.18.255.192"));
    assert_eq!(
        ip_of(&svcs, "asks").await?.as_deref(),
        Some("172.18.255.194")
    );

    // Exhausted: d waits until a deletion frees an address.
    create_svc(&client, "d", "LoadBalancer", None).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(ip_of(&svcs, "d").await?, None);
    svcs.delete("c", &DeleteParams::default()).await?;
    let d = eventually("d gets c's address", || async { ip_of(&svcs, "d").await }).await?;
    assert_eq!(d, "172.18.255.193");
    task.abort();
    Ok(())
}
