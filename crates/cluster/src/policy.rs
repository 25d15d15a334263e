//! `kinet policy matrix` and `kinet policy why`: the NetworkPolicy model over the live
//! cluster (`kinet_policy`), and real connection attempts made from inside each source pod's
//! network namespace, so they leave with the pod's own address through its node's rules.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_policy::{explain, Cluster, Endpoint, Matrix, Proto};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use crate::status::kubeconfig;

/// How long a probe waits for a connection (upstream's `agnhost connect --timeout=1s`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Parses `80`, `80/tcp`, `53/UDP`.
pub fn parse_port(s: &str) -> Result<(u16, Proto)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("invalid port {port:?}: must be 1-65535"))?;
    let Some(proto) = Proto::from_k8s(Some(&proto.to_ascii_uppercase())) else {
        bail!("unknown protocol {proto:?}: use tcp, udp or sctp");
    };
    Ok((port, proto))
}

async fn client(name: &str) -> Result<Client> {
    let path = kubeconfig(name)?;
    let kc = Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Client::try_from(config).context("API client")
}

/// The live cluster as the model sees it, and the pods with their uids.
async fn snapshot(name: &str) -> Result<(Cluster, Vec<Pod>)> {
    let client = client(name).await?;
    let lp = ListParams::default();
    let namespaces = Api::<Namespace>::all(client.clone()).list(&lp).await?.items;
    let pods = Api::<Pod>::all(client.clone()).list(&lp).await?.items;
    let policies = Api::<NetworkPolicy>::all(client).list(&lp).await?.items;
    let (cluster, refused) =
        kinet_agent::policy::cluster_view(namespaces.iter(), pods.iter(), policies.iter());
    for r in refused {
        eprintln!("warning: network policy left out: {r}");
    }
    Ok((cluster, pods))
}

/// `kinet policy why <ns/pod> <ns/pod> --port P/proto`.
pub async fn why(name: &str, from: &str, to: &str, port: &str) -> Result<String> {
    let (port, proto) = parse_port(port)?;
    let (cluster, _) = snapshot(name).await?;
    let find = |s: &str| {
        let (ns, pod) = s.split_once('/').unwrap_or(("default", s));
        cluster
            .pod(ns, pod)
            .with_context(|| format!("no pod {ns}/{pod} with an address (give <namespace>/<pod>)"))
    };
    let (src, dst) = (find(from)?, find(to)?);
    let v = cluster.verdict(Endpoint::Pod(src), Endpoint::Pod(dst), port, proto);
    Ok(explain(src, dst, port, proto, &v))
}

/// `kinet policy drops`: per node, the packets each policy's isolated pods refused (the
/// table's named counters, read over netlink).
pub async fn drops(name: &str) -> Result<String> {
    let (cluster, _) = snapshot(name).await?;
    let by_counter: std::collections::BTreeMap<String, String> = cluster
        .policy_ids()
        .map(|id| (kinet_policy::drop_counter_name(id), id.to_string()))
        .collect();
    let dir = crate::state::ClusterDir::new(&crate::state::absolute_home()?, name);
    let plan = crate::nodes::recorded_plan(&dir.load_info()?);
    let mut out = format!(
        "{:<24} {:<40} {:>10} {:>12}\n",
        "NODE", "POLICY", "PACKETS", "BYTES"
    );
    for node in &plan.nodes {
        let path =
            std::path::PathBuf::from(format!("{}/{}", kinet_netns::NETNS_RUN_DIR, node.netns));
        let counters = tokio::task::spawn_blocking(move || {
            kinet_proxy::netlink::NftSocket::open_in(&path)?.counters(kinet_policy::TABLE)
        })
        .await??;
        for (counter, packets, bytes) in counters {
            let policy = by_counter.get(&counter).cloned().unwrap_or(counter);
            out += &format!("{:<24} {policy:<40} {packets:>10} {bytes:>12}\n", node.name);
        }
    }
    Ok(out)
}

/// The ClusterIP through which to reach each pod of `pods` on `port`/`proto`.
async fn service_ips(
    name: &str,
    cluster: &Cluster,
    pods: &[&kinet_policy::Pod],
    port: u16,
    proto: Proto,
) -> Result<Vec<Ipv4Addr>> {
    let services = Api::<Service>::all(client(name).await?)
        .list(&ListParams::default())
        .await?
        .items;
    pods.iter()
        .map(|pod| {
            own_service_ip(&services, cluster, pod, port, proto).with_context(|| {
                format!(
                    "no Service with a ClusterIP selects only {}/{} on {port}/{proto}",
                    pod.namespace, pod.name
                )
            })
        })
        .collect()
}

/// The ClusterIP of the Service of `pod`'s namespace that selects it and no other pod, and
/// has `port`/`proto` (a probe through it can only reach that pod).
fn own_service_ip(
    services: &[Service],
    cluster: &Cluster,
    pod: &kinet_policy::Pod,
    port: u16,
    proto: Proto,
) -> Option<Ipv4Addr> {
    let only_this = |sel: &std::collections::BTreeMap<String, String>| {
        let selects = |p: &kinet_policy::Pod| {
            p.namespace == pod.namespace
                && !sel.is_empty()
                && sel.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        };
        selects(pod) && cluster.pods().filter(|p| selects(p)).count() == 1
    };
    services
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(&pod.namespace))
        .filter_map(|s| s.spec.as_ref())
        .filter(|spec| spec.selector.as_ref().is_some_and(only_this))
        .filter(|spec| {
            spec.ports.iter().flatten().any(|p| {
                p.port == i32::from(port) && Proto::from_k8s(p.protocol.as_deref()) == Some(proto)
            })
        })
        .find_map(|spec| spec.cluster_ip.as_deref()?.parse().ok())
}

/// `kinet policy matrix`: every pod of `namespaces` (all but kube-system when empty) to
/// every other, on `port`, probed (at its address, or through its own Service's ClusterIP
/// with `via_service`) and compared with the model.
pub async fn matrix(
    name: &str,
    namespaces: &[String],
    port: &str,
    via_service: bool,
) -> Result<Matrix> {
    let (port, proto) = parse_port(port)?;
    if proto == Proto::Sctp {
        bail!("the matrix probes TCP and UDP; SCTP is enforced but not probed");
    }
    let (cluster, api_pods) = snapshot(name).await?;
    let mut pods: Vec<&kinet_policy::Pod> = cluster
        .pods()
        .filter(|p| {
            if namespaces.is_empty() {
                p.namespace != "kube-system"
            } else {
                namespaces.contains(&p.namespace)
            }
        })
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if pods.is_empty() {
        bail!("no pods with an address in the chosen namespaces");
    }
    let mut m = Matrix::expected(&cluster, &pods, port, proto);
    let netns_of = |p: &kinet_policy::Pod| -> Result<String> {
        let uid = api_pods
            .iter()
            .find(|a| {
                a.metadata.namespace.as_deref() == Some(&p.namespace)
                    && a.metadata.name.as_deref() == Some(&p.name)
            })
            .and_then(|a| a.metadata.uid.as_deref())
            .with_context(|| format!("pod {}/{} has no uid", p.namespace, p.name))?;
        Ok(kinet_agent::pods::sandbox::netns_name(name, uid))
    };
    let targets: Vec<Ipv4Addr> = if via_service {
        service_ips(name, &cluster, &pods, port, proto).await?
    } else {
        pods.iter().map(|p| p.ip).collect()
    };
    // Every source pod probes every other pod at once, from a thread in its namespace.
    let mut rows = Vec::new();
    for (i, src) in pods.iter().enumerate() {
        let ns = kinet_netns::NetNs::open(&netns_of(src)?)?;
        let targets = targets.clone();
        rows.push(ns.spawn(move || {
            std::thread::scope(|s| {
                let probes: Vec<_> = targets
                    .iter()
                    .enumerate()
                    .map(|(j, ip)| s.spawn(move || (i != j).then(|| probe(*ip, port, proto))))
                    .collect();
                probes
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Some(false)))
                    .collect::<Vec<_>>()
            })
        })?);
    }
    for (i, row) in rows.into_iter().enumerate() {
        m.observed[i] = row
            .join()
            .map_err(|_| anyhow::anyhow!("a probe thread panicked"))??;
    }
    Ok(m)
}

/// One connection attempt: TCP connects, or a UDP datagram gets an answer.
fn probe(ip: Ipv4Addr, port: u16, proto: Proto) -> bool {
    let addr = SocketAddr::from((ip, port));
    match proto {
        Proto::Tcp => TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok(),
        Proto::Udp => udp_answers(addr).unwrap_or(false),
        Proto::Sctp => false,
    }
}

/// agnhost's UDP servers answer any datagram (netexec reads it as a command).
fn udp_answers(addr: SocketAddr) -> std::io::Result<bool> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(PROBE_TIMEOUT))?;
    sock.send(b"hostname")?;
    let mut buf = [0u8; 512];
    Ok(sock.recv(&mut buf).is_ok_and(|n| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, app: &str, ip: [u8; 4]) -> kinet_policy::Pod {
        kinet_policy::Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            ip: ip.into(),
            node: "n1".into(),
            ports: Vec::new(),
        }
    }

    fn service(ns: &str, app: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": format!("s-{app}")},
            "spec": {"selector": {"app": app}, "clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_is_probed_through_the_service_that_selects_only_it() {
        let mut c = Cluster::new();
        c.set_pod(pod("x", "a", "a", [10, 244, 1, 2]));
        c.set_pod(pod("x", "b", "web", [10, 244, 1, 3]));
        c.set_pod(pod("x", "c", "web", [10, 244, 1, 4]));
        c.set_pod(pod("y", "a", "a", [10, 244, 1, 5]));
        let tcp80 = serde_json::json!([{"port": 80}]);
        let services = [
            service(
                "x",
                "a",
                "10.96.0.10",
                serde_json::json!([{"port": 80, "protocol": "UDP"}]),
            ),
            service("x", "a", "10.96.0.11", tcp80.clone()),
            service("x", "web", "10.96.0.12", tcp80.clone()),
            service("y", "a", "10.96.0.13", tcp80),
        ];
        let ip = |ns, name, proto| {
            let p = c.pod(ns, name).unwrap();
            own_service_ip(&services, &c, p, 80, proto)
        };
        assert_eq!(ip("x", "a", Proto::Tcp), Some([10, 96, 0, 11].into()));
        assert_eq!(ip("x", "a", Proto::Udp), Some([10, 96, 0, 10].into()));
        assert_eq!(ip("y", "a", Proto::Tcp), Some([10, 96, 0, 13].into()));
        // x/b shares its Service with x/c: a probe through it could reach either.
        assert_eq!(ip("x", "b", Proto::Tcp), None);
    }

    #[test]
    fn ports_parse_with_a_default_protocol() {
        assert_eq!(parse_port("80").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port("81/SCTP").unwrap(), (81, Proto::Sctp));
        assert!(parse_port("0").is_err());
        assert!(parse_port("80/icmp").is_err());
    }
}
