//! The agent against a real (in-process) API server: registration, adoption after a
//! restart, status heartbeat and lease renewal.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kinet_agent::{
    lease, node, sync, AgentConfig, Capacity, Check, NodeConfig, Readiness, SystemInfo,
};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

fn cfg(name: &str, control_plane: bool) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        internal_ip: Ipv4Addr::new(172, 18, 0, 2),
        control_plane,
        capacity: Capacity {
            cpu: 2,
            memory_kib: 4_000_000,
            pods: 110,
        },
        system: SystemInfo {
            os_image: "Test OS".into(),
            kernel_version: "6.0".into(),
            architecture: "amd64".into(),
            container_runtime_version: "kinet://test".into(),
            machine_id: String::new(),
            boot_id: String::new(),
        },
    }
}

#[tokio::test]
async fn registers_posts_status_and_adopts_after_restart() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let nodes: Api<Node> = Api::all(client.clone());
    let c = cfg("n-control-plane", true);

    let created = sync::register(&client, &c).await?;
    let uid = created.metadata.uid.clone().unwrap();
    let all_ok = Readiness {
        network: Check::Ok,
        proxy: Check::Ok,
    };
    sync::post_status(&client, &c, Timestamp::now(), None, &all_ok.verdict(), None).await?;
    let got = nodes.get("n-control-plane").await?;
    assert!(node::is_ready(&got));
    let labels = got.metadata.labels.clone().unwrap();
    assert_eq!(labels[node::CONTROL_PLANE_LABEL], "");
    assert!(got.spec.as_ref().and_then(|s| s.taints.as_ref()).is_none());
    let status = got.status.unwrap();
    assert_eq!(status.addresses.unwrap()[0].address, "172.18.0.2");
    assert_eq!(status.node_info.unwrap().kubelet_version, "v1.32.0-kinet");

    // Someone else's label and a podCIDR the controllers set survive a restart's adoption.
    nodes
        .patch(
            "n-control-plane",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"disk": "ssd"}}, "spec": {"podCIDR": "10.244.0.0/24"}})),
        )
        .await?;
    let adopted = sync::register(&client, &c).await?;
    assert_eq!(adopted.metadata.uid.as_deref(), Some(uid.as_str()));
    let labels = adopted.metadata.labels.unwrap();
    assert_eq!(labels["disk"], "ssd");
    assert_eq!(labels["kubernetes.io/hostname"], "n-control-plane");
    assert_eq!(
        adopted.spec.unwrap().pod_cidr.as_deref(),
        Some("10.244.0.0/24")
    );
    Ok(())
}

#[tokio::test]
async fn lease_is_created_then_renewed() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), lease::NAMESPACE);
    let t1 = Timestamp::from_second(1_700_000_000)?;
    let t2 = Timestamp::from_second(1_700_000_010)?;
    sync::renew_lease(&client, "w1", Some("uid-w1"), t1).await?;
    let first = leases.get("w1").await?;
    assert!(lease::is_fresh(&first, t1));
    sync::renew_lease(&client, "w1", Some("uid-w1"), t2).await?;
    let second = leases.get("w1").await?;
    assert_eq!(
        first.metadata.uid, second.metadata.uid,
        "renewed, not recreated"
    );
    let renewed = second.spec.unwrap().renew_time.unwrap().0;
    assert_eq!(renewed.as_second(), t2.as_second());
    Ok(())
}

fn ready_condition(n: &Node) -> (String, String, String) {
    let c = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .unwrap_or_default();
    (
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    )
}

#[tokio::test]
async fn run_reports_readiness_honestly_and_keeps_the_lease_fresh() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let mut config = AgentConfig::new(cfg("w2", false));
    config.lease_interval = Duration::from_millis(200);
    // Long: readiness changes must be posted at once, not on the next heartbeat.
    config.status_interval = Duration::from_secs(3600);
    let (tx, rx) = tokio::sync::watch::channel(Readiness::starting());
    let agent = tokio::spawn(kinet_agent::run(client.clone(), config, rx));
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), lease::NAMESPACE);
    let condition =
        || async { anyhow::Ok(nodes.get_opt("w2").await?.map(|n| ready_condition(&n))) };
    let wait = |want: &'static str, why: &'static str| async move {
        for _ in 0..200 {
            if let Some(c) = condition().await? {
                if c.0 == want && c.2.contains(why) {
                    return anyhow::Ok(c);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "node never turned Ready={want} ({why}): {:?}",
            condition().await?
        )
    };

    // Registered before its pod network exists: not Ready, saying why.
    let c = wait("False", "Network plugin returns error").await?;
    assert_eq!(c.1, "KubeletNotReady");
    assert!(c.2.contains("NetworkReady=false"), "{}", c.2);
    tx.send_modify(|r| r.network = Check::Ok);
    wait("False", "service proxy not ready").await?;
    tx.send_modify(|r| r.proxy = Check::Ok);
    assert_eq!(wait("True", "").await?.1, "KubeletReady");
    // The proxy fails: NotReady with its error; it recovers: Ready again.
    tx.send_modify(|r| r.proxy = Check::Failed("nft: table busy".into()));
    wait("False", "service proxy not ready: nft: table busy").await?;
    tx.send_modify(|r| r.proxy = Check::Ok);
    wait("True", "kubelet is posting ready status").await?;

    let mut renewals = Vec::new();
    for _ in 0..100 {
        if let Some(l) = leases.get_opt("w2").await? {
            let t = l.spec.unwrap().renew_time.unwrap().0;
            if renewals.last() != Some(&t) {
                renewals.push(t);
            }
            if renewals.len() >= 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.abort();
    assert!(renewals.len() >= 3, "lease renewals seen: {renewals:?}");
    let owner = leases.get("w2").await?.metadata.owner_references.unwrap();
    assert_eq!(owner[0].uid, nodes.get("w2").await?.metadata.uid.unwrap());
    Ok(())
}
