//! `start()` against a real in-process API server, queried with `dig`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::common::{dig, dig_until, http_get, local_config, metric};

/// How long a watch event may take to show in answers: a bound for a loaded 2-core CI, left as
/// soon as the answer shows.
const PROPAGATION: Duration = Duration::from_secs(30);

async fn create_service(api: &Api<Service>, name: &str, spec: serde_json::Value) -> Service {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &svc)
        .await
        .expect("create service")
}

async fn create_slice(
    api: &Api<EndpointSlice>,
    name: &str,
    svc: &str,
    ips: &[String],
    hostnames: bool,
) {
    let endpoints: Vec<_> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": true}});
            if hostnames {
                e["hostname"] = json!(format!("{svc}-{i}"));
            }
            e
        })
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap();
    api.create(&PostParams::default(), &slice)
        .await
        .expect("create slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_api_watches() {
    let api = kinet_testkit::TestApi::start().await.expect("test api");
    let client = api.client().unwrap();
    let server = kinet_dns::start(client.clone(), &local_config())
        .await
        .unwrap();
    let dns = server.dns_addr();
    assert_ne!(dns.port(), 0, "the bound port is exposed");

    let http = server.metrics_addr();
    assert_eq!(
        http_get(http, "/health?verbose").await,
        (200, "[+]udp ok\nhealth check passed\n".into())
    );
    let started = Instant::now();
    while !server.is_ready() && started.elapsed() < PROPAGATION {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        http_get(http, "/ready?verbose").await,
        (
            200,
            "[+]udp ok\n[+]informer-sync ok\n[+]zone ok\n[+]shutdown ok\nready check passed\n"
                .into()
        )
    );
    assert_eq!(http_get(http, "/ready/zone").await, (200, "ok".into()));
    assert_eq!(http_get(http, "/ready/nope").await.0, 404);

    // The API server's own Service.
    let d = dig(dns, &["kubernetes.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.answers, vec!["10.96.0.1"]);
    assert!(d.flags.contains(&"aa".to_string()), "{:?}", d.flags);

    // A new Service is answered right after creation.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web = create_service(
        &services,
        "web",
        json!({"ports": [{"name": "http", "port": 80}]}),
    )
    .await;
    let web_ip = web.spec.unwrap().cluster_ip.expect("allocated cluster IP");
    let (d, took) = dig_until(dns, &["web.default.svc.cluster.local"], PROPAGATION, |d| {
        d.status == "NOERROR" && !d.answers.is_empty()
    })
    .await;
    assert_eq!(d.answers, vec![web_ip.clone()], "{}", d.raw);
    eprintln!("new Service answered {took:?} after creation");

    // Reverse lookup of the cluster IP.
    let d = dig(dns, &["-x", &web_ip]).await;
    assert_eq!(
        d.answers,
        vec!["web.default.svc.cluster.local."],
        "{}",
        d.raw
    );

    // Headless with named endpoints: A per endpoint, SRV per endpoint.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    create_service(
        &services,
        "db",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    let db_ips: Vec<String> = (1..=3).map(|i| format!("10.244.1.{i}")).collect();
    create_slice(&slices, "db-abc", "db", &db_ips, true).await;
    let (d, _) = dig_until(dns, &["db.default.svc.cluster.local"], PROPAGATION, |d| {
        d.answers.len() == 3
    })
    .await;
    assert_eq!(d.sorted_answers(), db_ips, "{}", d.raw);
    let d = dig(dns, &["_http._tcp.db.default.svc.cluster.local", "SRV"]).await;
    let mut srv = d.sorted_answers();
    srv.sort();
    assert_eq!(
        srv,
        (0..3)
            .map(|i| format!("0 33 8080 db-{i}.db.default.svc.cluster.local."))
            .collect::<Vec<_>>(),
        "{}",
        d.raw
    );
    let d = dig(dns, &["db-1.db.default.svc.cluster.local"]).await;
    assert_eq!(d.answers, vec!["10.244.1.2"], "{}", d.raw);
    let d = dig(dns, &["-x", "10.244.1.3"]).await;
    assert_eq!(
        d.answers,
        vec!["db-2.db.default.svc.cluster.local."],
        "{}",
        d.raw
    );

    // Missing Service and missing namespace.
    let d = dig(dns, &["missing.default.svc.cluster.local"]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    let d = dig(dns, &["web.nosuchns.svc.cluster.local"]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);

    // Outside the zone with no upstream: refused (an answer, where a dropped query would have
    // left dig with no status after its one try).
    let d = dig(dns, &["example.com"]).await;
    assert_eq!(d.status, "REFUSED", "{}", d.raw);

    // TCP.
    let d = dig(dns, &["+tcp", "kubernetes.default.svc.cluster.local"]).await;
    assert_eq!(d.answers, vec!["10.96.0.1"], "{}", d.raw);

    // Many endpoints: UDP at 512 bytes truncates, TCP carries everything, and
    // plain dig retries over TCP by itself.
    create_service(&services, "big", json!({"clusterIP": "None"})).await;
    let big_ips: Vec<String> = (1..=100).map(|i| format!("10.244.2.{i}")).collect();
    create_slice(&slices, "big-1", "big", &big_ips, false).await;
    let (d, _) = dig_until(
        dns,
        &["+tcp", "big.default.svc.cluster.local"],
        PROPAGATION,
        |d| d.answers.len() == 100,
    )
    .await;
    assert_eq!(d.answers.len(), 100, "{}", d.raw);
    let d = dig(
        dns,
        &["+ignore", "+bufsize=512", "big.default.svc.cluster.local"],
    )
    .await;
    assert!(d.flags.contains(&"tc".to_string()), "{}", d.raw);
    assert!(!d.answers.is_empty() && d.answers.len() < 100, "{}", d.raw);
    let d = dig(
        dns,
        &["+ignore", "+noedns", "big.default.svc.cluster.local"],
    )
    .await;
    assert!(d.flags.contains(&"tc".to_string()), "{}", d.raw);
    let d = dig(dns, &["big.default.svc.cluster.local"]).await;
    assert_eq!(d.answers.len(), 100, "dig falls back to TCP: {}", d.raw);

    // Deletion is seen as quickly.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let (d, _) = dig_until(dns, &["web.default.svc.cluster.local"], PROPAGATION, |d| {
        d.status == "NXDOMAIN"
    })
    .await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);

    // The metrics saw all of it.
    let (code, text) = http_get(server.metrics_addr(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metric(&text, "kinet_dns_requests_total{proto=\"udp\",type=\"A\"}") >= 5,
        "{text}"
    );
    assert!(
        metric(&text, "kinet_dns_requests_total{proto=\"tcp\",type=\"A\"}") >= 2,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "kinet_dns_requests_total{proto=\"udp\",type=\"SRV\"}"
        ) >= 1,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "kinet_dns_requests_total{proto=\"udp\",type=\"PTR\"}"
        ) >= 2,
        "{text}"
    );
    assert!(
        metric(&text, "kinet_dns_responses_total{rcode=\"NXDOMAIN\"}") >= 3,
        "{text}"
    );
    assert_eq!(
        metric(&text, "kinet_dns_responses_total{rcode=\"REFUSED\"}"),
        1,
        "{text}"
    );
    assert!(
        metric(&text, "kinet_dns_truncated_responses_total") >= 2,
        "{text}"
    );
    assert!(
        metric(&text, "kinet_dns_request_duration_seconds_count") >= 15,
        "{text}"
    );
    server.shutdown().await;
}
