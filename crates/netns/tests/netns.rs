//! Root tests: real namespaces under /run/netns, named `kinet-t<pid>-…`, removed on Drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;

use futures::TryStreamExt;
use kinet_netns::NetNs;

/// Deletes the named namespaces when dropped, even when the test fails.
struct Guard(Vec<String>);

impl Drop for Guard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = kinet_netns::delete(name);
        }
    }
}

fn name(suffix: &str) -> String {
    format!("kinet-t{}-{suffix}", std::process::id())
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn own_netns_inode() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

#[test]
fn create_is_visible_to_iproute2_and_delete_removes_it() {
    let n = name("a");
    let _guard = Guard(vec![n.clone()]);
    let ns = NetNs::create(&n).unwrap();
    assert!(matches!(
        NetNs::create(&n),
        Err(kinet_netns::Error::Exists(_))
    ));
    assert!(ip(&["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&n)));
    assert!(kinet_netns::list().unwrap().contains(&n));

    // `ip netns exec` enters the same namespace: only lo, and a different netns than ours.
    let links = ip(&["-n", &n, "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"));
    let inside = ns.run(own_netns_inode).unwrap();
    assert_ne!(inside, own_netns_inode());
    // A long-lived thread started inside the namespace is in it too.
    assert_eq!(
        ns.spawn(own_netns_inode).unwrap().join().unwrap().unwrap(),
        inside
    );
    // So is a thread entering it by path.
    assert_eq!(
        kinet_netns::run_in(&ns.path(), own_netns_inode).unwrap(),
        inside
    );
    assert!(kinet_netns::run_in(std::path::Path::new("/run/netns/none"), || ()).is_err());
    // A second open of the same name is the same namespace.
    assert_eq!(
        NetNs::open(&n).unwrap().run(own_netns_inode).unwrap(),
        inside
    );

    ns.delete().unwrap();
    assert!(!NetNs::exists(&n));
    assert!(matches!(
        NetNs::open(&n),
        Err(kinet_netns::Error::NotFound(_))
    ));
    kinet_netns::delete(&n).unwrap(); // missing is success
}

#[test]
fn sockets_and_netlink_stay_in_the_namespace_they_were_made_in() {
    let (a, b) = (name("s1"), name("s2"));
    let _guard = Guard(vec![a.clone(), b.clone()]);
    let nsa = NetNs::create(&a).unwrap();
    let nsb = NetNs::create(&b).unwrap();
    Command::new("ip")
        .args(["-n", &a, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    Command::new("ip")
        .args(["-n", &b, "link", "set", "lo", "up"])
        .status()
        .unwrap();

    // A listener made inside `a`, used from this (host-namespace) thread afterwards.
    let listener = nsa
        .run(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let connected_in_a = nsa.run(|| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
    assert!(connected_in_a.unwrap());
    listener.accept().unwrap();
    // The same port on loopback of `b` is a different loopback: nobody listens there.
    let refused_in_b = nsb.run(|| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(refused_in_b.unwrap());

    // A netlink handle opened in `a` acts on `a` from a tokio worker.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let handle = nsa.netlink_handle().unwrap();
        // A bridge: this kernel (like many CI kernels) has no dummy driver.
        let link = rtnetlink::LinkBridge::new("kprobe0").build();
        handle.link().add(link).execute().await.unwrap();
        let names: Vec<String> = handle
            .link()
            .get()
            .execute()
            .map_ok(|m| {
                m.attributes
                    .iter()
                    .find_map(|a| match a {
                        rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
            })
            .try_collect()
            .await
            .unwrap();
        assert_eq!(names, vec!["lo".to_string(), "kprobe0".to_string()]);
    });
    assert!(ip(&["-n", &a, "-o", "link"]).contains("kprobe0"));
    assert!(!ip(&["-n", &b, "-o", "link"]).contains("kprobe0"));
}
