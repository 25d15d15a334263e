//! Packets through the loaded rules: a node namespace routing for two pod
//! namespaces; a pod reaches a server in the other pod through the ClusterIP,
//! keeping its own source address; with no endpoints it is refused.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use kinet_proxy::ApplyOutcome;

use crate::objects::{service, slice, Proxy};
use crate::support::{add_pod, root, Netns};

const CLIENT_IP: &str = "10.244.1.10";
const SERVER_IP: &str = "10.244.1.20";
const GATEWAY: &str = "10.244.1.1";
const CLUSTER_IP: &str = "10.96.0.20";

/// Accepts one connection within 5 s, says hello, returns the peer address.
fn serve_once(listener: TcpListener) -> Option<SocketAddr> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut conn, peer)) => {
                conn.set_nonblocking(false).unwrap();
                conn.write_all(b"hello").unwrap();
                return Some(peer);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

fn connect(client: &Netns, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    client
        .spawn(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        })
        .join()
        .unwrap()
}

#[test]
fn clusterip_reaches_pod_without_snat_and_empty_service_refuses() {
    if !root() {
        return;
    }
    let node_ns = Netns::new("node");
    let client = Netns::new("pa");
    let server = Netns::new("pb");
    node_ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // A real node has a default route, so service addresses are routable
    // before DNAT; here it leads to a sink namespace that answers nothing,
    // which also keeps any stray packet inside our namespaces.
    let sink = Netns::new("sink");
    node_ns.exec(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &sink.name,
    ]);
    sink.exec(&["ip", "link", "set", "up1", "up"]);
    node_ns.exec(&["ip", "link", "set", "up0", "up"]);
    node_ns.exec(&["ip", "route", "add", "default", "dev", "up0"]);
    add_pod(&node_ns, &client, 0, CLIENT_IP, GATEWAY);
    add_pod(&node_ns, &server, 1, SERVER_IP, GATEWAY);

    let mut proxy = Proxy::new(&node_ns);
    let svc = service("default", "web", Some(CLUSTER_IP), 80);
    assert!(matches!(
        proxy.load(
            std::slice::from_ref(&svc),
            &[slice("default", "web", &[SERVER_IP], 8080, "TCP")],
        ),
        ApplyOutcome::Applied { .. }
    ));

    // The listener is created inside the server pod and stays there.
    let listener = server
        .spawn(|| TcpListener::bind("0.0.0.0:8080").unwrap())
        .join()
        .unwrap();
    let accepted = std::thread::spawn(move || serve_once(listener));
    let reply = connect(&client, &format!("{CLUSTER_IP}:80")).expect("connect via ClusterIP");
    assert_eq!(reply, "hello");
    let peer = accepted.join().unwrap().expect("server saw no connection");
    assert_eq!(
        peer.ip().to_string(),
        CLIENT_IP,
        "client address must not be SNATed"
    );

    // A port the service does not have is rejected too (cluster-ips-check).
    let err = connect(&client, &format!("{CLUSTER_IP}:81")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // No endpoints: refused, not a timeout.
    proxy.load(&[svc], &[]);
    let err = connect(&client, &format!("{CLUSTER_IP}:80")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// A UDP flow DNATed to an endpoint is deleted from conntrack when the
/// endpoint leaves the service (the `conntrack` tool only looks).
#[test]
fn udp_flow_to_a_removed_endpoint_is_flushed() {
    if !root() {
        return;
    }
    let node_ns = Netns::new("unode");
    let client = Netns::new("ua");
    let server = Netns::new("ub");
    node_ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    add_pod(&node_ns, &client, 0, CLIENT_IP, GATEWAY);
    add_pod(&node_ns, &server, 1, SERVER_IP, GATEWAY);
    let mut proxy = Proxy::new(&node_ns);
    let mut svc = service("default", "dns", Some("10.96.0.10"), 53);
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    let slices = |ips: &[&str]| [slice("default", "dns", ips, 5353, "UDP")];
    proxy.load(
        std::slice::from_ref(&svc),
        &slices(&[SERVER_IP, "10.244.1.21"]),
    );

    let sock = server
        .spawn(|| std::net::UdpSocket::bind("0.0.0.0:5353").unwrap())
        .join()
        .unwrap();
    let flows = || node_ns.exec(&["conntrack", "-L", "-p", "udp", "--dst-nat", SERVER_IP]);
    // numgen picks an endpoint at random: send from fresh ports until one
    // flow lands on the server (each attempt is 1/2).
    for _ in 0..40 {
        client
            .spawn(|| {
                let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                s.send_to(b"q", "10.96.0.10:53").unwrap();
            })
            .join()
            .unwrap();
        if flows().contains("sport=5353") {
            break;
        }
    }
    // The reply direction of a DNATed flow comes from the endpoint.
    assert!(
        flows().contains(&format!("src={SERVER_IP} ")),
        "{}",
        flows()
    );
    drop(sock);

    let out = proxy.load(std::slice::from_ref(&svc), &slices(&["10.244.1.21"]));
    let ApplyOutcome::Applied { flushed_udp, .. } = out else {
        panic!("expected a load, got {out:?}");
    };
    assert_eq!(
        flushed_udp,
        vec![format!("{SERVER_IP}:5353").parse().unwrap()]
    );
    assert!(!flows().contains(SERVER_IP), "{}", flows());
}
