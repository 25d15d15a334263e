//! `kinet policy matrix` and `kinet policy why`: the NetworkPolicy model over the live
//! cluster (`kinet_policy`), and real connection attempts made from inside each source pod's
//! network namespace, so they leave with the pod's own address through its node's rules.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod};
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

/// The live cluster as the model sees it, and the pods with their uids.
async fn snapshot(name: &str) -> Result<(Cluster, Vec<Pod>)> {
    let path = kubeconfig(name)?;
    let kc = Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config).context("API client")?;
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

/// `kinet policy matrix`: every pod of `namespaces` (all but kube-system when empty) to
/// every other, on `port`, probed and compared with the model.
pub async fn matrix(name: &str, namespaces: &[String], port: &str) -> Result<Matrix> {
    let (port, proto) = parse_port(port)?;
    if proto == Proto::Sctp {
        bail!("the matrix probes TCP and UDP; SCTP is enforced but not probed");
    }
    let (cluster, api_pods) = snapshot(name).await?;
    let mut pods: Vec<&kinet_policy::Pod> = cluster
        .pods()
        .iter()
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
    let targets: Vec<Ipv4Addr> = pods.iter().map(|p| p.ip).collect();
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

    #[test]
    fn ports_parse_with_a_default_protocol() {
        assert_eq!(parse_port("80").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port("81/SCTP").unwrap(), (81, Proto::Sctp));
        assert!(parse_port("0").is_err());
        assert!(parse_port("80/icmp").is_err());
    }
}
