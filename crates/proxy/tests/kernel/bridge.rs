//! Pods behind a bridge, as on a kinet node: `cbr0` with the pods' veths, bridged traffic
//! through netfilter (`bridge-nf-call-iptables=1`), hairpin mode off (the hairpin
//! connection is masqueraded and routed by the node, so the bridge never sends a frame back
//! out of the port it came in on). Real TCP
//! through the applied rules: load spread, ClientIP affinity, a pod reaching itself through
//! its own Service (hairpin masquerade), refusal without endpoints; and the LoadBalancer
//! address and health-check port seen from an "outside" namespace on an underlay link.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinet_proxy::{health_checks, HealthServer, LbAddresses};
use serde_json::json;

use crate::objects::{service, slice, Proxy};
use crate::support::{root, Netns};

const GATEWAY: &str = "10.244.1.1";
const POD_A: &str = "10.244.1.10";
const POD_B: &str = "10.244.1.20";
const CLUSTER_IP: &str = "10.96.0.30";
const NODE_IP: &str = "192.168.0.2";
const OUTSIDE_IP: &str = "192.168.0.50";
const LB_IP: &str = "192.168.0.200";

/// A node namespace with `cbr0` and two pods on it, plus an outside namespace on the
/// node's `eth0` link. Everything goes with the namespaces on Drop.
struct Bridged {
    node: Netns,
    pods: [Netns; 2],
    outside: Netns,
}

fn bridged() -> Bridged {
    let node = Netns::new("bn");
    let pods = [Netns::new("ba"), Netns::new("bb")];
    let outside = Netns::new("bo");
    node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    node.exec(&["ip", "link", "add", "cbr0", "type", "bridge"]);
    node.exec(&["ip", "addr", "add", &format!("{GATEWAY}/24"), "dev", "cbr0"]);
    node.exec(&["ip", "link", "set", "cbr0", "up"]);
    // Per namespace; the lead's agent sets the same when it prepares cbr0.
    node.exec(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
    for (i, (pod, ip)) in pods.iter().zip([POD_A, POD_B]).enumerate() {
        let host_if = format!("veth{i}");
        node.exec(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns",
            &pod.name,
        ]);
        node.exec(&["ip", "link", "set", &host_if, "master", "cbr0"]);
        node.exec(&[
            "ip",
            "link",
            "set",
            &host_if,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        node.exec(&["ip", "link", "set", &host_if, "up"]);
        pod.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        pod.exec(&["ip", "link", "set", "eth0", "up"]);
        pod.exec(&["ip", "route", "add", "default", "via", GATEWAY]);
    }
    // The underlay side: node eth0 and an outside client on one link.
    node.exec(&[
        "ip",
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    node.exec(&["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"]);
    node.exec(&["ip", "link", "set", "eth0", "up"]);
    outside.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{OUTSIDE_IP}/24"),
        "dev",
        "eth0",
    ]);
    outside.exec(&["ip", "link", "set", "eth0", "up"]);
    // A real node has a default route, so service addresses route before DNAT; the outside
    // namespace does not forward, so nothing leaves our namespaces.
    node.exec(&["ip", "route", "add", "default", "via", OUTSIDE_IP]);
    Bridged {
        node,
        pods,
        outside,
    }
}

/// Serves `name` to every connection until `stop`, from a listener made inside `ns`.
fn serve(ns: &Netns, port: u16, name: &'static str, stop: Arc<AtomicBool>) {
    let listener = ns
        .spawn(move || TcpListener::bind(("0.0.0.0", port)).unwrap())
        .join()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    let _ = conn.write_all(format!("{name} {}", peer.ip()).as_bytes());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err(_) => return,
            }
        }
    });
}

/// Connects from `ns` and reads the whole reply.
fn fetch(ns: &Netns, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    ns.spawn(move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
    .join()
    .unwrap()
}

struct Stop(Arc<AtomicBool>);
impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn with_affinity(
    mut svc: k8s_openapi::api::core::v1::Service,
) -> k8s_openapi::api::core::v1::Service {
    let spec = svc.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    svc
}

#[test]
fn bridged_pods_spread_stick_hairpin_and_refuse() {
    if !root() {
        return;
    }
    let b = bridged();
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    serve(&b.pods[0], 8080, "a", stop.0.clone());
    serve(&b.pods[1], 8080, "b", stop.0.clone());
    let mut proxy = Proxy::new(&b.node);
    let svc = service("default", "web", Some(CLUSTER_IP), 80);
    let both = [slice("default", "web", &[POD_A, POD_B], 8080, "TCP")];
    proxy.load(std::slice::from_ref(&svc), &both);

    // Random choice: 40 connections from pod a reach both pods, keeping a's address
    // (and a reaching itself is masqueraded: the reply must come back through the node).
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let reply = fetch(&b.pods[0], &format!("{CLUSTER_IP}:80")).expect("via ClusterIP");
        let (server, peer) = reply.split_once(' ').unwrap();
        match server {
            "b" => assert_eq!(peer, POD_A, "pod-to-pod keeps the client address"),
            "a" => assert_eq!(
                peer, GATEWAY,
                "hairpin is masqueraded to the bridge address"
            ),
            other => panic!("unexpected server {other}"),
        }
        seen.insert(server.to_string());
    }
    assert_eq!(
        seen.len(),
        2,
        "numgen should reach both endpoints: {seen:?}"
    );

    // ClientIP affinity: every connection from one client goes to the first choice.
    let sticky = with_affinity(svc.clone());
    proxy.load(std::slice::from_ref(&sticky), &both);
    let first = fetch(&b.pods[1], &format!("{CLUSTER_IP}:80")).unwrap();
    let sticks = |when: &str| {
        for _ in 0..15 {
            let again = fetch(&b.pods[1], &format!("{CLUSTER_IP}:80")).unwrap();
            assert_eq!(
                again.split(' ').next(),
                first.split(' ').next(),
                "affinity broken {when}"
            );
        }
    };
    sticks("before a resync");
    let affinity = || {
        let listing = b.node.exec(&["nft", "list", "table", "ip", "kinet"]);
        listing
            .lines()
            .skip_while(|l| !l.contains("set affinity-"))
            .find(|l| l.contains("elements"))
            .map(str::to_string)
    };
    let remembered = affinity().expect("the affinity set remembers the client");
    assert!(remembered.contains(POD_B), "{remembered}");

    // A resync keeps the affinity set's contents: the client stays on its endpoint. The
    // first finds the table untouched by its generation; the second, after another
    // table's commit, reads the whole table back and finds nothing to change.
    for commit_elsewhere in [false, true] {
        if commit_elsewhere {
            b.node.exec(&["nft", "add", "table", "ip", "scratch"]);
        }
        assert_eq!(proxy.resync(std::slice::from_ref(&sticky), &both), 0);
        // Checked before any new connection could re-add it.
        let kept = affinity();
        assert!(kept.as_ref().is_some_and(|l| l.contains(POD_B)), "{kept:?}");
    }
    sticks("after a resync");

    // Hairpin only: pod b is the sole endpoint and reaches itself.
    let only_b = [slice("default", "web", &[POD_B], 8080, "TCP")];
    proxy.load(std::slice::from_ref(&svc), &only_b);
    let reply = fetch(&b.pods[1], &format!("{CLUSTER_IP}:80")).expect("hairpin");
    assert_eq!(reply, format!("b {GATEWAY}"));

    // No endpoints: refused at once.
    proxy.load(std::slice::from_ref(&svc), &[]);
    let err = fetch(&b.pods[0], &format!("{CLUSTER_IP}:80")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

fn lb_service(local: bool) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "LoadBalancer", "clusterIP": CLUSTER_IP,
                 "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                 "healthCheckNodePort": if local { json!(32100) } else { json!(null) },
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_address_answers_arp_and_health_check_counts_local_endpoints() {
    if !root() {
        return;
    }
    let b = bridged();
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    serve(&b.pods[0], 8080, "a", stop.0.clone());
    let mut proxy = Proxy::new(&b.node);
    let svc = lb_service(true);
    let eps = [slice("default", "web", &[POD_A], 8080, "TCP")];
    proxy.load(std::slice::from_ref(&svc), &eps);

    // The node holds the LB address; the outside client's ARP finds it, DNAT does the rest,
    // and Local policy keeps the client's address.
    let mut lb = LbAddresses::new(b.node.path());
    lb.sync(&[LB_IP.parse().unwrap()].into()).unwrap();
    let reply = fetch(&b.outside, &format!("{LB_IP}:80")).expect("via LB address");
    assert_eq!(reply, format!("a {OUTSIDE_IP}"));
    let reply = fetch(&b.outside, &format!("{NODE_IP}:31080")).expect("via NodePort");
    assert_eq!(reply, format!("a {OUTSIDE_IP}"));

    // Health check: 200 with one local endpoint, 503 without.
    let mut health = HealthServer::new(b.node.path());
    health.sync(health_checks(std::slice::from_ref(&svc), &eps, "node-a"));
    let get = |ns: &Netns| {
        let to: SocketAddr = format!("{NODE_IP}:32100").parse().unwrap();
        ns.spawn(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        })
        .join()
        .unwrap()
    };
    let ok = tokio::task::block_in_place(|| get(&b.outside)).unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"localEndpoints\":1"), "{ok}");
    health.sync(health_checks(std::slice::from_ref(&svc), &[], "node-a"));
    let unavailable = tokio::task::block_in_place(|| get(&b.outside)).unwrap();
    assert!(unavailable.starts_with("HTTP/1.1 503"), "{unavailable}");

    // Released: the address leaves the node and nothing answers for it any more.
    lb.sync(&BTreeSet::new()).unwrap();
    let addrs = b
        .node
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
    assert!(!addrs.contains(LB_IP), "{addrs}");
}

#[test]
fn random_choice_over_real_connections_is_uniform() {
    if !root() {
        return;
    }
    let b = bridged();
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    // Three endpoints: pod a on two ports, pod b on one.
    serve(&b.pods[0], 8080, "a", stop.0.clone());
    serve(&b.pods[0], 8081, "c", stop.0.clone());
    serve(&b.pods[1], 8080, "b", stop.0.clone());
    let mut proxy = Proxy::new(&b.node);
    let svc = service("default", "web", Some(CLUSTER_IP), 80);
    let mut second = slice("default", "web", &[POD_A], 8081, "TCP");
    second.metadata.name = Some("web-2".into());
    let slices = [
        slice("default", "web", &[POD_A, POD_B], 8080, "TCP"),
        second,
    ];
    proxy.load(std::slice::from_ref(&svc), &slices);

    // Each connection is one draw of the kernel's numgen; 3,000 of them from pod b.
    let to: SocketAddr = format!("{CLUSTER_IP}:80").parse().unwrap();
    let counts = b.pods[1]
        .spawn(move || {
            let mut counts = [0u32; 3];
            for _ in 0..3000 {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut buf = String::new();
                s.read_to_string(&mut buf).unwrap();
                let i = ["a", "b", "c"].iter().position(|n| buf.starts_with(n));
                counts[i.unwrap_or_else(|| panic!("unexpected reply {buf:?}"))] += 1;
            }
            counts
        })
        .join()
        .unwrap();
    let expected = 1000.0;
    let chi2: f64 = counts
        .iter()
        .map(|c| (f64::from(*c) - expected).powi(2) / expected)
        .sum();
    // Two degrees of freedom: P(chi2 > x) = exp(-x/2), so a uniform choice fails this once
    // in a million runs, while one endpoint taking half the draws scores about 375.
    assert!(chi2 < 27.63, "chi-square {chi2:.2} for {counts:?}");
}
