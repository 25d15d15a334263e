//! Two API servers on one etcd: the ClusterIPs and NodePorts they hand out never collide, since
//! each is claimed in the store by compare-and-swap before the Service is written; and the
//! servers of one cluster share its identity: one CA, one service-account key.

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use kinet_testkit::etcd::EtcdCluster;
use kinet_testkit::TestApi;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use serde_json::json;

fn service(name: &str, ip: Option<&str>, node_port: Option<u16>) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "clusterIP": ip, "selector": {"app": name},
            "ports": [{"port": 80, "nodePort": node_port}]},
    }))
    .unwrap()
}

fn held(svc: &Service) -> (String, i32) {
    let spec = svc.spec.as_ref().unwrap();
    let port = spec.ports.as_ref().unwrap()[0].node_port.unwrap();
    (spec.cluster_ip.clone().unwrap(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_etcd_never_hand_out_the_same_ip_or_port() -> anyhow::Result<()> {
    let etcd = EtcdCluster::start(1)?;
    let servers = [
        TestApi::on_etcd(&etcd.url()).await?,
        TestApi::on_etcd(&etcd.url()).await?,
    ];
    let apis: Vec<Api<Service>> = servers
        .iter()
        .map(|s| Ok(Api::namespaced(s.client()?, "default")))
        .collect::<anyhow::Result<_>>()?;

    // Random NodePorts: 120 picks from 2,768 ports collide with odds near 90% when the two
    // servers do not see each other's picks.
    let created: Vec<Service> = futures::stream::iter(0..120)
        .map(|i| {
            let api = apis[i % 2].clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &service(&format!("random-{i}"), None, None),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let ips: HashSet<String> = created.iter().map(|s| held(s).0).collect();
    let ports: HashSet<i32> = created.iter().map(|s| held(s).1).collect();
    assert_eq!(ips.len(), 120, "a ClusterIP was handed out twice");
    assert_eq!(ports.len(), 120, "a NodePort was handed out twice");

    // The same IP and port asked of both servers at once: exactly one Service gets them.
    let free_ips = (1..255)
        .map(|i| format!("10.96.200.{i}"))
        .filter(|ip| !ips.contains(ip));
    let free_ports = (32000..32767u16).filter(|p| !ports.contains(&i32::from(*p)));
    for (i, (ip, port)) in free_ips.zip(free_ports).take(8).enumerate() {
        let ask = |api: &Api<Service>, who: &str| {
            let (api, svc) = (
                api.clone(),
                service(&format!("{who}-{i}"), Some(&ip), Some(port)),
            );
            async move { api.create(&PostParams::default(), &svc).await }
        };
        let (a, b) = tokio::join!(ask(&apis[0], "a"), ask(&apis[1], "b"));
        let refused = match (&a, &b) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e.to_string(),
            _ => panic!("round {i}: want exactly one create to succeed: {a:?} / {b:?}"),
        };
        assert!(refused.contains("already allocated"), "{refused}");
    }

    // A number released through one server is free on the other once its etcd watch shows it.
    let (ip, port) = held(&created[0]);
    let name = created[0].metadata.name.as_deref().unwrap_or_default();
    apis[0].delete(name, &DeleteParams::default()).await?;
    let reuse = service("reuse", Some(&ip), Some(port as u16));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let again = loop {
        match apis[1].create(&PostParams::default(), &reuse).await {
            Ok(svc) => break svc,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("already allocated"), "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert_eq!(held(&again), (ip, port));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_one_server_issues_authenticates_at_the_other() -> anyhow::Result<()> {
    let etcd = EtcdCluster::start(1)?;
    let servers = TestApi::cluster_on_etcd(&etcd.url(), 2).await?;
    let (a, b) = (&servers[0], &servers[1]);
    assert_eq!(a.ca_pem, b.ca_pem, "one cluster CA");
    let sas: Api<ServiceAccount> = Api::namespaced(a.client()?, "default");
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "reader"}}))?;
    sas.create(&PostParams::default(), &sa).await?;
    let issued = sas
        .create_token_request("reader", &PostParams::default(), &TokenRequest::default())
        .await?;
    let token = issued.status.expect("a token").token;

    // Presented to the other server: it is the service account there (RBAC then refuses the
    // list, which it would not do for an unknown token: that is 401).
    let as_reader = kinet_controllers::client::connect(&b.url, &b.ca_pem, &token)?;
    let pods: Api<Pod> = Api::namespaced(as_reader, "default");
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains("system:serviceaccount:default:reader"),
                "{}",
                s.message
            );
        }
        other => panic!("want 403 for the service account, got {other:?}"),
    }
    Ok(())
}
