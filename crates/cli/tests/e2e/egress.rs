//! Issue 10, item 5: egress. By default nothing from a cluster's pods or nodes leaves kinet's
//! namespaces toward an address outside the cluster, even while the host forwards; `kinet up
//! --egress` masquerades it on the host, as kind does. The "remote" is a namespace of this
//! test's own on 198.18.0.0/15 (the benchmarking range) behind a veth on the host, so no packet
//! leaves the machine.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{show, stdout, Cluster};
use crate::pods::wait_dns;
use crate::services::client;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The host's IPv4 forwarding turned on, as on any machine running Docker; the old value is
/// restored on drop.
struct Forwarding {
    old: String,
}

impl Forwarding {
    fn on() -> Forwarding {
        let old = std::fs::read_to_string(IP_FORWARD).unwrap();
        std::fs::write(IP_FORWARD, "1").unwrap();
        Forwarding { old }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(IP_FORWARD, self.old.trim()) {
            eprintln!("cleanup: restoring {IP_FORWARD}: {e}");
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}\n{}", show(&out));
}

/// A namespace of this test's own, reachable from the host through a veth pair on a /30 of
/// 198.18.0.0/15, with a TCP listener; link and namespace are removed on drop.
struct Remote {
    netns: String,
    link: String,
    host_ip: Ipv4Addr,
    addr: SocketAddr,
    listener: Option<TcpListener>,
}

impl Remote {
    fn new() -> Remote {
        let pid = std::process::id();
        // One /30 per test process: concurrent runs do not collide.
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (pid % (1 << 15)) * 4;
        let host_ip = Ipv4Addr::from(base + 1);
        let remote_ip = Ipv4Addr::from(base + 2);
        let mut remote = Remote {
            netns: format!("egress-remote-{pid}"),
            link: format!("egr{pid}"),
            host_ip,
            addr: SocketAddr::from((remote_ip, 0)),
            listener: None,
        };
        let (ns, link) = (remote.netns.clone(), remote.link.clone());
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{remote_ip}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        // Replies to any source go back through the host: without it a leak could not
        // complete a handshake and would go unnoticed.
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        let listener = kinet_netns::NetNs::open(&ns)
            .unwrap()
            .run(|| TcpListener::bind((remote_ip, 0)))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        remote.addr = listener.local_addr().unwrap();
        remote.listener = Some(listener);
        remote
    }

    /// The peers of the connections that have arrived (completed their handshake) since the
    /// last call, with what each sent.
    fn arrivals(&self) -> Vec<(Ipv4Addr, String)> {
        let listener = self.listener.as_ref().unwrap();
        let mut out = Vec::new();
        loop {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let mut text = String::new();
                    let _ = conn.read_to_string(&mut text);
                    let SocketAddr::V4(peer) = peer else {
                        panic!("IPv6 peer {peer}")
                    };
                    out.push((*peer.ip(), text.trim().to_string()));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return out,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// A shell command that connects to the listener and sends `hello`; bounded so that a
    /// black-holed connection cannot hang the test.
    fn connect_script(&self) -> String {
        format!(
            "timeout 10 bash -c 'echo hello >/dev/tcp/{}/{}'",
            self.addr.ip(),
            self.addr.port()
        )
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.listener = None;
        // Deleting one end of a veth deletes both.
        for args in [
            vec!["link", "del", self.link.as_str()],
            vec!["netns", "del", self.netns.as_str()],
        ] {
            let out = Command::new("ip").args(&args).output();
            if !out.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("cleanup: ip {args:?} failed: {out:?}");
            }
        }
    }
}

fn pod_sh(c: &Cluster, pod: &str, script: &str) -> Output {
    c.kubectl(&["exec", pod, "--", "bash", "-c", script])
}

fn node_sh(c: &Cluster, script: &str) -> Output {
    let node = format!("{}-control-plane", c.name);
    c.node_exec(&node, &["bash", "-c", script])
}

/// The host's egress table of cluster `name`, as `nft` lists it (None: there is none).
fn host_table(name: &str) -> Option<String> {
    let table = format!("kinet-{name}-egress");
    let out = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    out.status.success().then(|| stdout(&out))
}

#[test]
fn egress_is_isolated_by_default_and_masqueraded_on_the_host_with_the_flag() {
    let _forwarding = Forwarding::on();
    let remote = Remote::new();
    // The remote is reachable from the host, and the listener sees who connects.
    drop(TcpStream::connect_timeout(&remote.addr, Duration::from_secs(5)).unwrap());
    assert_eq!(
        remote.arrivals(),
        [(remote.host_ip, String::new())],
        "the host's own connection"
    );

    let isolated = Cluster::up(1);
    wait_dns(&isolated);
    let pod = client(&isolated);
    let out = pod_sh(&isolated, &pod, &remote.connect_script());
    assert!(
        !out.status.success(),
        "pod reached the remote\n{}",
        show(&out)
    );
    let out = node_sh(&isolated, &remote.connect_script());
    assert!(
        !out.status.success(),
        "node reached the remote\n{}",
        show(&out)
    );
    assert_eq!(remote.arrivals(), [], "nothing arrives by default");
    // What stays inside the cluster still works: a Service and DNS from the pod, a Service
    // from the node (through the node's route for the Service range), the API server.
    let out = pod_sh(
        &isolated,
        &pod,
        "curl -sk --max-time 5 https://kubernetes.default.svc.cluster.local/version",
    );
    assert!(stdout(&out).contains("gitVersion"), "{}", show(&out));
    let out = node_sh(&isolated, "curl -sk --max-time 5 https://10.96.0.1/version");
    assert!(stdout(&out).contains("gitVersion"), "{}", show(&out));
    let status = stdout(&isolated.kinet(&["status"]));
    assert!(status.contains("Egress:      isolated"), "{status}");
    assert_eq!(host_table(&isolated.name), None);
    drop(isolated);

    let open = Cluster::new();
    let out = open.kinet(&["up", "--nodes", "1", "--egress"]);
    assert!(
        out.status.success(),
        "kinet up --egress failed\n{}",
        show(&out)
    );
    let table = host_table(&open.name).expect("the host's egress table");
    assert!(table.contains("masquerade"), "{table}");
    let status = stdout(&open.kinet(&["status"]));
    assert!(status.contains("Egress:      on"), "{status}");
    let pod = client(&open);
    let out = pod_sh(&open, &pod, &remote.connect_script());
    assert!(out.status.success(), "{}", show(&out));
    // Masqueraded on the host: the remote sees the host's address on its link.
    assert_eq!(remote.arrivals(), [(remote.host_ip, "hello".to_string())]);
    let name = open.name.clone();
    drop(open);
    assert_eq!(host_table(&name), None, "down removes the host's table");
}
