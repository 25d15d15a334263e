//! Forwarding to a fake upstream on loopback (never a real resolver).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kinet_dns::DnsConfig;
use kinet_dns_zone::hickory_proto::op::{Message, ResponseCode};
use kinet_dns_zone::hickory_proto::rr::rdata::A;
use kinet_dns_zone::hickory_proto::rr::{RData, Record};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::common::{dig, http_get, local_config, metric};

/// Names under `big.` get 60 answers: over UDP the fake only sets TC.
const BIG: usize = 60;

struct FakeUpstream {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Answers every A query with 192.0.2.x (TTL 300); `nx.example.` is NXDOMAIN.
fn reply(req: &Message, over_tcp: bool) -> Vec<u8> {
    let mut resp = Message::response(req.id, req.op_code);
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.iter().cloned());
    let q = &req.queries[0];
    let name = q.name().to_ascii().to_ascii_lowercase();
    if name == "nx.example." {
        resp.metadata.response_code = ResponseCode::NXDomain;
    } else if name.ends_with("big.example.") && !over_tcp {
        resp.metadata.truncation = true;
    } else {
        let n = if name.ends_with("big.example.") {
            BIG
        } else {
            1
        };
        for i in 0..n {
            let ip = Ipv4Addr::new(192, 0, 2, i as u8 + 1);
            resp.add_answer(Record::from_rdata(q.name().clone(), 300, RData::A(A(ip))));
        }
    }
    resp.to_vec().unwrap()
}

/// A UDP socket and a TCP listener on one loopback port: the kernel picks the UDP port, which
/// another process may hold for TCP, so a few picks are tried.
async fn same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP in 50 tries");
}

async fn fake_upstream() -> FakeUpstream {
    let (udp, tcp) = same_port().await;
    let addr = udp.local_addr().unwrap();
    let (udp_queries, tcp_queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let count = udp_queries.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            count.fetch_add(1, Ordering::SeqCst);
            let req = Message::from_vec(&buf[..n]).unwrap();
            let _ = udp.send_to(&reply(&req, false), peer).await;
        }
    });
    let count = tcp_queries.clone();
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let len = s.read_u16().await.unwrap();
            let mut buf = vec![0u8; len as usize];
            s.read_exact(&mut buf).await.unwrap();
            let out = reply(&Message::from_vec(&buf).unwrap(), true);
            s.write_u16(out.len() as u16).await.unwrap();
            s.write_all(&out).await.unwrap();
        }
    });
    FakeUpstream {
        addr,
        udp_queries,
        tcp_queries,
        tasks: vec![udp_task, tcp_task],
    }
}

fn config(upstreams: Vec<SocketAddr>) -> DnsConfig {
    DnsConfig {
        upstreams,
        ..local_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_caches_and_falls_back_to_tcp() {
    let up = fake_upstream().await;
    let view = kinet_dns::new_view(&local_config()).unwrap();
    {
        let svc = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.96.3.3"},
        }))
        .unwrap();
        view.write().unwrap().upsert_service(&svc);
    }
    let server = kinet_dns::serve(view, &config(vec![up.addr]))
        .await
        .unwrap();
    let dns = server.dns_addr();

    // The zone is still answered locally.
    let d = dig(dns, &["web.default.svc.cluster.local"]).await;
    assert_eq!(d.answers, vec!["10.96.3.3"], "{}", d.raw);
    assert_eq!(up.udp_queries.load(Ordering::SeqCst), 0);

    // Outside the zone: forwarded once, then from the cache with a lower TTL.
    let d = dig(dns, &["www.example.", "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.answers, vec!["192.0.2.1"]);
    assert!(d.flags.contains(&"ra".to_string()), "{:?}", d.flags);
    let d = dig(dns, &["WWW.Example.", "A"]).await;
    assert_eq!(d.answers, vec!["192.0.2.1"], "{}", d.raw);
    assert_eq!(
        up.udp_queries.load(Ordering::SeqCst),
        1,
        "second answer came from the cache"
    );
    assert_eq!(server.metrics().cache_hits(), 1);
    assert_eq!(server.metrics().cache_misses(), 1);

    // Negative answers are forwarded as they are (not cached: no SOA).
    let d = dig(dns, &["nx.example."]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);

    // A truncated upstream answer is fetched again over TCP.
    let d = dig(dns, &["+tcp", "x.big.example."]).await;
    assert_eq!(d.answers.len(), BIG, "{}", d.raw);
    assert_eq!(up.tcp_queries.load(Ordering::SeqCst), 1);
    // ... and cut again to what a UDP client accepts.
    let d = dig(dns, &["+ignore", "+bufsize=512", "x.big.example."]).await;
    assert!(d.flags.contains(&"tc".to_string()), "{}", d.raw);

    let (_, text) = http_get(server.metrics_addr(), "/metrics").await;
    assert_eq!(metric(&text, "kinet_dns_cache_hits_total"), 2, "{text}");
    assert_eq!(metric(&text, "kinet_dns_cache_misses_total"), 3, "{text}");
    assert_eq!(
        metric(&text, "kinet_dns_forward_requests_total"),
        3,
        "{text}"
    );
    assert_eq!(metric(&text, "kinet_dns_cache_entries"), 2, "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_servfail_and_next_upstream_is_tried() {
    // A loopback port with nothing behind it: the kernel refuses at once.
    let dead = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let server = kinet_dns::serve(
        kinet_dns::new_view(&local_config()).unwrap(),
        &config(vec![dead]),
    )
    .await
    .unwrap();
    let d = dig(server.dns_addr(), &["www.example."]).await;
    assert_eq!(d.status, "SERVFAIL", "{}", d.raw);
    assert_eq!(server.metrics().responses(ResponseCode::ServFail), 1);
    server.shutdown().await;

    let up = fake_upstream().await;
    let server = kinet_dns::serve(
        kinet_dns::new_view(&local_config()).unwrap(),
        &config(vec![dead, up.addr]),
    )
    .await
    .unwrap();
    let d = dig(server.dns_addr(), &["www.example."]).await;
    assert_eq!(d.answers, vec!["192.0.2.1"], "{}", d.raw);
    server.shutdown().await;
}
