//! View updates under load: every query in flight gets an answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kinet_dns_zone::hickory_proto::op::{Message, Query, ResponseCode};
use kinet_dns_zone::hickory_proto::rr::{Name, RecordType};
use serde_json::json;
use tokio::net::UdpSocket;

use crate::common::{dig, http_get, local_config};

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_never_drop_queries() {
    let view = kinet_dns::new_view(&local_config()).unwrap();
    view.write()
        .unwrap()
        .upsert_service(&service("stable", "10.96.9.9"));
    let server = kinet_dns::serve(view.clone(), &local_config())
        .await
        .unwrap();
    // Not ready until the view is synced, naming the check (as kube-apiserver's /readyz).
    assert_eq!(
        http_get(server.metrics_addr(), "/ready").await,
        (
            500,
            "[+]udp ok\n[-]informer-sync failed: reason withheld\n[+]zone ok\n[+]shutdown ok\n\
             ready check failed\n"
                .into()
        ),
    );
    assert_eq!(
        http_get(server.metrics_addr(), "/ready?exclude=informer-sync").await,
        (200, "ok".into())
    );
    server.set_synced(true);
    assert_eq!(http_get(server.metrics_addr(), "/ready").await.0, 200);

    // A writer churns the view as fast as it can while queries run.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (view, stop) = (view.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("churn-{}", n % 500);
                let ip = format!("10.97.{}.{}", (n / 250) % 250, n % 250 + 1);
                let mut v = view.write().unwrap();
                if n.is_multiple_of(3) {
                    v.remove_service("default", &name);
                } else {
                    v.upsert_service(&service(&name, &ip));
                }
                n += 1;
            }
            n
        })
    };

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server.dns_addr()).await.unwrap();
    let mut buf = vec![0u8; 2048];
    for i in 0..2000u16 {
        let mut q = Message::query();
        q.metadata.id = i;
        q.add_query(Query::query(
            Name::from_ascii("stable.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        sock.send(&q.to_vec().unwrap()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("query {i} got no answer"))
            .unwrap();
        let resp = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(resp.id, i);
        assert_eq!(resp.response_code, ResponseCode::NoError);
        assert_eq!(resp.answers.len(), 1);
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(
        writes > 100,
        "the view really changed during the run ({writes} writes)"
    );
    assert_eq!(server.metrics().responses(ResponseCode::NoError), 2000);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_keeps_answering_while_not_ready() {
    let view = kinet_dns::new_view(&local_config()).unwrap();
    view.write()
        .unwrap()
        .upsert_service(&service("stable", "10.96.9.9"));
    let server = kinet_dns::serve(view, &local_config()).await.unwrap();
    server.set_synced(true);
    let (dns, http) = (server.dns_addr(), server.metrics_addr());
    // A lameduck long enough for the checks below on a loaded CI.
    let draining = tokio::spawn(server.drain(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        http_get(http, "/ready/shutdown").await,
        (
            500,
            "internal server error: draining: answering the last clients before stopping\n".into()
        ),
        "not ready while draining"
    );
    assert_eq!(
        http_get(http, "/health").await.0,
        200,
        "alive while draining"
    );
    let d = dig(dns, &["stable.default.svc.cluster.local"]).await;
    assert_eq!(d.answers, vec!["10.96.9.9"], "still answering: {}", d.raw);
    draining.await.unwrap();
    let d = dig(dns, &["+time=1", "stable.default.svc.cluster.local"]).await;
    assert!(
        d.answers.is_empty(),
        "stopped after the lameduck: {}",
        d.raw
    );
}
