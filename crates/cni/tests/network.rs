//! Root tests: an underlay namespace, two node namespaces and two pods per node, all named
//! `kinet-t<pid>-<backend>-…` and deleted by a Drop guard; then real pings and UDP between pods.
//! They need br_netfilter, as kinet's nodes do (`ensure_pod_bridge` fails without it).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use kinet_cni::{
    add_pod, check_node, check_pod, del_pod, ensure_node, ensure_underlay, ensure_vxlan,
    host_veth_name, sync_peers, Backend, NodeNetwork, Peer, PodSpec, Underlay,
};
use kinet_netns::NetNs;

/// Deletes every namespace it was told about, even when the test panics. Deleting a namespace
/// takes its veths with it, so nothing is left in the underlay either.
struct Guard(Vec<String>);

impl Drop for Guard {
    fn drop(&mut self) {
        for n in self.0.iter().rev() {
            let _ = kinet_netns::delete(n);
        }
    }
}

impl Guard {
    fn create(&mut self, name: String) -> NetNs {
        self.0.push(name.clone());
        NetNs::create(&name).unwrap()
    }
}

fn sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ping(from: &NetNs, to: Ipv4Addr) -> bool {
    sh(&[
        "ip",
        "netns",
        "exec",
        from.name(),
        "ping",
        "-c1",
        "-W1",
        &to.to_string(),
    ])
    .0
}

/// One unfragmentable ping of `bytes` (IP packet size), answered.
fn ping_df(from: &NetNs, to: Ipv4Addr, bytes: u32) -> bool {
    let payload = (bytes - 28).to_string();
    let ns = from.name();
    let to = to.to_string();
    sh(&[
        "ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-M", "do", "-s", &payload, &to,
    ])
    .0
}

const BRIDGE_NF_CALL_IPTABLES: &str = "net.bridge.bridge-nf-call-iptables";

/// `net.bridge.bridge-nf-call-iptables` inside `ns`.
fn bridge_nf_call_iptables(ns: &NetNs) -> String {
    let key = BRIDGE_NF_CALL_IPTABLES;
    let (ok, out) = sh(&["ip", "netns", "exec", ns.name(), "sysctl", "-n", key]);
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// Sends one UDP datagram from pod `from` to a socket bound inside pod `to`, and returns the
/// source address the receiver saw.
fn udp_source(from: &NetNs, to: &NetNs, to_ip: Ipv4Addr) -> SocketAddr {
    let rx = to
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = from
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    tx.send_to(b"hello", (to_ip, port)).unwrap();
    let mut buf = [0u8; 16];
    let (n, src) = rx.recv_from(&mut buf).expect("datagram arrives");
    assert_eq!(&buf[..n], b"hello");
    src
}

async fn ensure_vxlan_if(ns: &NetNs, net: &NodeNetwork) -> Option<kinet_cni::Mac> {
    match net.backend {
        Backend::Vxlan => Some(ensure_vxlan(ns, net).await.unwrap()),
        Backend::HostGw => None,
    }
}

struct Pod {
    ns: NetNs,
    spec: PodSpec,
    node: usize,
}

struct Cluster {
    _guard: Guard,
    underlay: Underlay,
    underlay_ns: NetNs,
    macs: Vec<Option<kinet_cni::Mac>>,
    nodes: Vec<(NetNs, NodeNetwork)>,
    pods: Vec<Pod>,
}

/// Builds the whole topology with the library, printing per-pod setup time.
async fn cluster(tag: &str, backend: Backend) -> Cluster {
    let prefix = format!("kinet-t{}-{tag}", std::process::id());
    let mut guard = Guard(Vec::new());
    let u = Underlay::kind_default();
    let uns = guard.create(format!("{prefix}-u"));
    ensure_underlay(&uns, &u).await.unwrap();

    let mut nodes = Vec::new();
    for i in 1..=2u8 {
        let ns = guard.create(format!("{prefix}-n{i}"));
        let cidr = format!("10.244.{i}.0/24").parse().unwrap();
        let net = NodeNetwork::new(cidr, Ipv4Addr::new(172, 18, 0, i + 1), u.mtu, backend);
        ensure_node(&uns, &u, &ns, &format!("veth-n{i}"), &net)
            .await
            .unwrap();
        nodes.push((ns, net));
    }
    let mut macs = Vec::new();
    for (ns, net) in &nodes {
        macs.push(ensure_vxlan_if(ns, net).await);
    }
    let all: Vec<Peer> = nodes
        .iter()
        .zip(&macs)
        .map(|((ns, net), mac)| Peer {
            node: ns.name().into(),
            pod_cidr: net.pod_cidr,
            underlay_ip: net.underlay_ip,
            vtep_mac: *mac,
        })
        .collect();
    for (ns, net) in &mut nodes {
        net.peers = all
            .iter()
            .filter(|p| p.node != ns.name())
            .cloned()
            .collect();
        let p = sync_peers(ns, net).await.unwrap();
        assert_eq!(p.add.routes.len(), 1);
        assert!(p.remove.routes.is_empty());
    }

    let mut pods = Vec::new();
    for (n, (node, net)) in nodes.iter().enumerate() {
        for k in 2..=3u8 {
            let ns = guard.create(format!("{prefix}-n{}p{k}", n + 1));
            let spec = PodSpec {
                ifname: "eth0".into(),
                ip: net.pod_cidr.nth(u64::from(k)).unwrap(),
                prefix: net.pod_cidr.prefix(),
                gateway: net.bridge_ip,
                host_veth: host_veth_name(ns.name()),
                mtu: net.pod_mtu(),
                route_mtu: net.pod_route_mtu(),
            };
            let t = Instant::now();
            add_pod(node, &ns, &spec).await.unwrap();
            println!(
                "{tag}: add_pod {} ({}) took {:?}",
                ns.name(),
                spec.ip,
                t.elapsed()
            );
            pods.push(Pod { ns, spec, node: n });
        }
    }
    Cluster {
        _guard: guard,
        underlay: u,
        underlay_ns: uns,
        macs,
        nodes,
        pods,
    }
}

/// What both backends must satisfy: CHECK is clean and stays clean after re-running every
/// step, pods reach each other on one node and across nodes without NAT, DEL is idempotent.
async fn exercise(c: &Cluster) {
    for (ns, net) in &c.nodes {
        assert_eq!(
            check_node(ns, &c.underlay, net).await.unwrap(),
            Vec::<String>::new()
        );
    }
    for p in &c.pods {
        let node = &c.nodes[p.node].0;
        assert_eq!(
            check_pod(node, &p.ns, &p.spec).await.unwrap(),
            Vec::<String>::new()
        );
        // ADD twice is the same pod.
        add_pod(node, &p.ns, &p.spec).await.unwrap();
        let (_, links) = sh(&["ip", "-n", p.ns.name(), "-o", "link"]);
        assert_eq!(links.lines().count(), 2, "{links}");
        let (_, addrs) = sh(&["ip", "-n", p.ns.name(), "-4", "-o", "addr"]);
        assert!(
            addrs.contains(&format!("{}/{}", p.spec.ip, p.spec.prefix)),
            "{addrs}"
        );
        let node_name = node.name();
        let (_, port) = sh(&[
            "bridge",
            "-n",
            node_name,
            "-d",
            "link",
            "show",
            "dev",
            &p.spec.host_veth,
        ]);
        assert!(port.contains("hairpin on"), "{port}");
        let (_, routes) = sh(&["ip", "-n", p.ns.name(), "route"]);
        assert!(
            routes.contains(&format!("default via {} dev eth0", p.spec.gateway)),
            "{routes}"
        );
    }
    // A pod made before the MTU changed: CHECK sees its route's old MTU, and ADD replaces it.
    let p = &c.pods[0];
    let old = format!(
        "-n {} route replace default via {} dev eth0 mtu 1300",
        p.ns.name(),
        p.spec.gateway
    );
    let (ok, out) = sh(&["ip"].into_iter().chain(old.split(' ')).collect::<Vec<_>>());
    assert!(ok, "{out}");
    let node = &c.nodes[p.node].0;
    assert!(!check_pod(node, &p.ns, &p.spec).await.unwrap().is_empty());
    add_pod(node, &p.ns, &p.spec).await.unwrap();
    assert_eq!(
        check_pod(node, &p.ns, &p.spec).await.unwrap(),
        Vec::<String>::new()
    );

    for (i, (ns, net)) in c.nodes.iter().enumerate() {
        // A new namespace starts with 1: turned off, only ensure_node can bring it back.
        let off = format!("{BRIDGE_NF_CALL_IPTABLES}=0");
        let (ok, out) = sh(&["ip", "netns", "exec", ns.name(), "sysctl", "-w", &off]);
        assert!(ok, "{out}");
        let veth = format!("veth-n{}", i + 1);
        ensure_node(&c.underlay_ns, &c.underlay, ns, &veth, net)
            .await
            .unwrap();
        assert_eq!(
            ensure_vxlan_if(ns, net).await,
            c.macs[i],
            "VTEP MAC changed"
        );
        assert!(
            sync_peers(ns, net).await.unwrap().is_empty(),
            "converged node changed"
        );
        assert_eq!(
            check_node(ns, &c.underlay, net).await.unwrap(),
            Vec::<String>::new()
        );
    }

    // Pod traffic bridged on a node visits the ip hooks (Services, policies); the underlay's
    // bridge, which only carries node traffic, skips them.
    assert_eq!(bridge_nf_call_iptables(&c.underlay_ns), "0");
    for (ns, _) in &c.nodes {
        assert_eq!(bridge_nf_call_iptables(ns), "1");
    }

    let (a, b, x) = (&c.pods[0], &c.pods[1], &c.pods[2]); // a, b on node 1; x on node 2
    assert!(ping(&a.ns, b.spec.ip), "same-node ping");
    assert!(ping(&a.ns, x.spec.ip), "cross-node ping");
    assert!(ping(&x.ns, a.spec.ip), "cross-node ping back");
    assert!(
        ping(&a.ns, c.nodes[1].1.bridge_ip),
        "pod to the other node's cbr0"
    );
    // No NAT: the receiver sees the sender's pod IP.
    assert_eq!(udp_source(&a.ns, &b.ns, b.spec.ip).ip(), a.spec.ip);
    assert_eq!(udp_source(&a.ns, &x.ns, x.spec.ip).ip(), a.spec.ip);
    assert_eq!(udp_source(&x.ns, &a.ns, a.spec.ip).ip(), x.spec.ip);

    // A peer that leaves: its route (and neighbour, FDB) go, and the pods stop reaching it.
    let (n1, net1) = &c.nodes[0];
    let mut alone = net1.clone();
    alone.peers.clear();
    let p = sync_peers(n1, &alone).await.unwrap();
    assert_eq!(p.remove.routes.len(), 1);
    let (_, routes) = sh(&["ip", "-n", n1.name(), "route"]);
    assert!(!routes.contains("10.244.2.0/24"), "{routes}");
    assert!(!check_node(n1, &c.underlay, net1).await.unwrap().is_empty());
    assert!(!ping(&a.ns, x.spec.ip), "removed peer still reachable");
    sync_peers(n1, net1).await.unwrap();
    assert!(ping(&a.ns, x.spec.ip), "re-added peer");

    // DEL removes both ends, twice is fine, CHECK then complains.
    let node = &c.nodes[b.node].0;
    del_pod(node, &b.spec.host_veth).await.unwrap();
    del_pod(node, &b.spec.host_veth).await.unwrap();
    let (_, links) = sh(&["ip", "-n", node.name(), "-o", "link"]);
    assert!(!links.contains(&b.spec.host_veth), "{links}");
    let (_, links) = sh(&["ip", "-n", b.ns.name(), "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");
    assert!(!check_pod(node, &b.ns, &b.spec).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_pod_network() {
    let c = cluster("vx", Backend::Vxlan).await;
    let (n1, net1) = &c.nodes[0];
    let peer = &net1.peers[0];
    let mac = peer.vtep_mac.unwrap().to_string();
    let (_, routes) = sh(&["ip", "-n", n1.name(), "route"]);
    assert!(
        routes.contains("10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto 77 onlink"),
        "{routes}"
    );
    let (_, neigh) = sh(&["ip", "-n", n1.name(), "neigh", "show", "dev", "flannel.1"]);
    assert!(
        neigh.contains(&format!("10.244.2.0 lladdr {mac} PERMANENT")),
        "{neigh}"
    );
    let (_, fdb) = sh(&["bridge", "-n", n1.name(), "fdb", "show", "dev", "flannel.1"]);
    assert!(
        fdb.contains(&format!("{mac} dst 172.18.0.3 self permanent")),
        "{fdb}"
    );
    let (_, dev) = sh(&["ip", "-n", n1.name(), "-d", "link", "show", "flannel.1"]);
    assert!(
        dev.contains("mtu 1450") && dev.contains("vxlan id 1") && dev.contains("dstport 8472"),
        "{dev}"
    );
    assert!(dev.contains("nolearning"), "{dev}");
    // Pods keep the underlay's MTU on the node and take the overlay's header off the way out.
    let (a, b, x) = (&c.pods[0], &c.pods[1], &c.pods[2]);
    let (_, routes) = sh(&["ip", "-n", a.ns.name(), "route"]);
    assert!(
        routes.contains("default via 10.244.1.1 dev eth0 proto static mtu 1450"),
        "{routes}"
    );
    assert!(ping_df(&a.ns, b.spec.ip, 1500), "full frame on one node");
    assert!(ping_df(&a.ns, x.spec.ip, 1450), "full overlay frame");
    assert!(!ping_df(&a.ns, x.spec.ip, 1451), "over the overlay's MTU");
    exercise(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_pod_network() {
    let c = cluster("hg", Backend::HostGw).await;
    let (n2, _) = &c.nodes[1];
    let (_, routes) = sh(&["ip", "-n", n2.name(), "route"]);
    assert!(
        routes.contains("10.244.1.0/24 via 172.18.0.2 dev eth0 proto 77"),
        "{routes}"
    );
    let (_, links) = sh(&["ip", "-n", n2.name(), "-o", "link"]);
    assert!(!links.contains("flannel.1"), "{links}");
    exercise(&c).await;
}
