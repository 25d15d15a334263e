//! Node IPAM against a real in-process API server.

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::DeleteParams;
use kube::Api;
use serde_json::json;

use crate::support::{create_node, wait_for};

async fn cidr(
    nodes: &Api<Node>,
    name: &str,
) -> anyhow::Result<(Option<String>, Option<Vec<String>>)> {
    let spec = nodes.get(name).await?.spec.unwrap_or_default();
    Ok((spec.pod_cidr, spec.pod_cidrs))
}

fn config() -> kinet_controllers::ControllerConfig {
    kinet_controllers::ControllerConfig {
        cluster_cidr: "10.244.0.0/23".into(),
        node_cidr_mask: 24,
        ..Default::default()
    }
}

#[tokio::test]
async fn assigns_lowest_free_reports_exhaustion_and_survives_restart() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&client, "a", json!({}), json!([])).await?;
    create_node(&client, "b", json!({}), json!([])).await?;
    let task = tokio::spawn(kinet_controllers::nodeipam::run(client.clone(), config()));
    wait_for("two CIDRs", 10, || async {
        Ok(cidr(&nodes, "a").await?.0.is_some() && cidr(&nodes, "b").await?.0.is_some())
    })
    .await?;
    assert_eq!(
        cidr(&nodes, "a").await?,
        (
            Some("10.244.0.0/24".into()),
            Some(vec!["10.244.0.0/24".into()])
        )
    );
    assert_eq!(
        cidr(&nodes, "b").await?,
        (
            Some("10.244.1.0/24".into()),
            Some(vec!["10.244.1.0/24".into()])
        )
    );

    // Exhausted: condition and event, no CIDR.
    create_node(&client, "c", json!({}), json!([])).await?;
    wait_for("NetworkUnavailable", 10, || async {
        let n = nodes.get("c").await?;
        Ok(n.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "NetworkUnavailable"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("NoCIDRAvailable")
            }))
    })
    .await?;
    assert_eq!(cidr(&nodes, "c").await?.0, None);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for("CIDRNotAvailable event", 10, || async {
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("CIDRNotAvailable")
                    && e.involved_object.name.as_deref() == Some("c")
            }))
    })
    .await?;

    // Restart with a node gone: assignments are read back, the freed block goes to c.
    task.abort();
    nodes.delete("a", &DeleteParams::default()).await?;
    let task = tokio::spawn(kinet_controllers::nodeipam::run(client.clone(), config()));
    wait_for("c gets a's block", 10, || async {
        Ok(cidr(&nodes, "c").await?.0.as_deref() == Some("10.244.0.0/24"))
    })
    .await?;
    assert_eq!(cidr(&nodes, "b").await?.0.as_deref(), Some("10.244.1.0/24"));
    // With its block, c's network is no longer reported unavailable.
    wait_for("NetworkUnavailable=False on c", 10, || async {
        let n = nodes.get("c").await?;
        let conds = n.status.and_then(|s| s.conditions).unwrap_or_default();
        let net: Vec<_> = conds
            .iter()
            .filter(|c| c.type_ == "NetworkUnavailable")
            .collect();
        Ok(net.len() == 1
            && net[0].status == "False"
            && net[0].reason.as_deref() == Some("RouteCreated"))
    })
    .await?;
    task.abort();
    Ok(())
}
