//! `kinet manifests dns|proxy|policy|ingress`: an add-on as YAML to `kubectl apply` on any
//! cluster (the objects are `kinet_manifests`').

use std::net::SocketAddr;

use clap::Subcommand;
use kinet_manifests::{dns::DnsAddon, proxy::ProxyAddon, Addon};

#[derive(Subcommand)]
pub enum ManifestsCommand {
    /// Cluster DNS: Deployment `coredns` and Service `kube-dns` in kube-system (kubeadm's
    /// names), with CoreDNS's ClusterRole.
    Dns {
        /// The cluster domain.
        #[arg(long, default_value = "cluster.local")]
        zone: String,
        /// Resolver for names outside the zone (IP or IP:port); repeat for several. None:
        /// such names are REFUSED.
        #[arg(long = "upstream", value_parser = kinet_cluster::dns_image::parse_upstream)]
        upstreams: Vec<SocketAddr>,
        /// The `kube-dns` Service's ClusterIP: the address kubelets give pods
        /// (`--cluster-dns`).
        #[arg(long, default_value = kinet_manifests::dns::DNS_SERVICE_IP)]
        cluster_ip: String,
    },
    /// The service proxy: a host-network DaemonSet in kube-system, with kube-proxy's
    /// `system:node-proxier` rules.
    Proxy {
        /// nftables or iptables.
        #[arg(long, default_value = "nftables", value_parser = kinet_cluster::proxy_mode::parse)]
        proxy_mode: kinet_cluster::proxy_mode::ProxyMode,
        /// Run beside kube-proxy, serving only Services labelled
        /// `service.kubernetes.io/service-proxy-name: kinet` (which kube-proxy skips).
        /// Without it, kinet's proxy replaces kube-proxy.
        #[arg(long)]
        beside_kube_proxy: bool,
        /// The pods' range (kube-proxy's `--cluster-cidr`).
        #[arg(long, default_value = kinet_types::wellknown::CLUSTER_CIDR)]
        cluster_cidr: String,
        /// `HOST:PORT` of the API server, for a proxy replacing kube-proxy: it cannot reach
        /// the API through the `kubernetes` Service it has yet to program.
        #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
        api_server: Option<(String, u16)>,
    },
    /// The NetworkPolicy enforcer: a host-network DaemonSet in kube-system.
    Policy,
    /// The ingress controller (class `kinet`, default): namespace `kinet-ingress`, a
    /// Deployment and a LoadBalancer Service.
    Ingress,
}

/// The add-on a command names.
pub fn addon(what: ManifestsCommand) -> anyhow::Result<Addon> {
    Ok(match what {
        ManifestsCommand::Dns {
            zone,
            upstreams,
            cluster_ip,
        } => Addon::Dns(DnsAddon {
            zone: zone.trim_end_matches('.').to_string(),
            cluster_ip,
            ..DnsAddon::new(upstreams)
        }),
        ManifestsCommand::Proxy {
            proxy_mode,
            beside_kube_proxy,
            cluster_cidr,
            api_server,
        } => {
            anyhow::ensure!(
                !(beside_kube_proxy && proxy_mode == kinet_cluster::proxy_mode::ProxyMode::Iptables),
                "--beside-kube-proxy needs --proxy-mode nftables: kube-proxy owns the KUBE-* iptables chains"
            );
            Addon::Proxy(ProxyAddon {
                mode: proxy_mode.to_string(),
                beside_kube_proxy,
                cluster_cidr,
                api_server,
            })
        }
        ManifestsCommand::Policy => Addon::Policy,
        ManifestsCommand::Ingress => Addon::Ingress,
    })
}

fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

pub fn print(what: ManifestsCommand) -> anyhow::Result<()> {
    print!("{}", kinet_manifests::yaml(&addon(what)?.objects()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        what: ManifestsCommand,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Addon> {
        let args = std::iter::once("manifests").chain(args.iter().copied());
        addon(Cli::try_parse_from(args)?.what)
    }

    #[test]
    fn flags_make_the_add_on() {
        let Addon::Proxy(p) = parse(&["proxy", "--api-server", "172.18.0.1:6443"]).unwrap() else {
            panic!("the proxy")
        };
        assert_eq!(p.api_server, Some(("172.18.0.1".into(), 6443)));
        assert_eq!(p.mode, "nftables");
        assert!(!p.beside_kube_proxy);
        let Addon::Dns(d) =
            parse(&["dns", "--zone", "lab.local.", "--upstream", "192.0.2.1"]).unwrap()
        else {
            panic!("dns")
        };
        assert_eq!((d.zone.as_str(), d.upstreams.len()), ("lab.local", 1));
        assert!(parse(&["proxy", "--api-server", "nohost"]).is_err());
        let e = parse(&["proxy", "--beside-kube-proxy", "--proxy-mode", "iptables"]).unwrap_err();
        assert!(e.to_string().contains("kube-proxy owns"), "{e}");
        assert_eq!(parse(&["policy"]).unwrap(), Addon::Policy);
    }
}
