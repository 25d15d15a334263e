//! The `kinet-dns` image's process: `kinet image-run kinet-dns:<v> -- <args>` runs the
//! cluster DNS server with in-cluster credentials (the pod's service-account token and the
//! `KUBERNETES_SERVICE_*` variables), as CoreDNS does in a kubeadm cluster.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use clap::Parser;
use kinet_dns::DnsConfig;

/// The image's flags. Everything has a default, so a bare `kinet-dns` serves `cluster.local`
/// on :53 and :9153 and refuses names outside the zone.
#[derive(Debug, Parser)]
#[command(name = "kinet-dns", about = "Cluster DNS for Kubernetes (kube-dns)")]
struct Flags {
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    zone: String,
    /// Resolver for names outside the zone: IP or IP:port (port 53 by default). Repeat for
    /// several. None: such names are REFUSED.
    #[arg(long = "upstream", value_parser = parse_upstream)]
    upstreams: Vec<SocketAddr>,
    /// UDP and TCP DNS address.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// HTTP address of /metrics, /health and /ready.
    #[arg(long, default_value = "0.0.0.0:9153")]
    metrics: SocketAddr,
    /// Responses kept by the forwarding cache (0 turns it off).
    #[arg(long, default_value_t = kinet_dns::DEFAULT_CACHE_SIZE)]
    cache_size: usize,
}

/// `IP` or `IP:port` (`[v6]:port` for IPv6 with a port); the port defaults to 53.
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an IP address or IP:port"))
}

/// The server's configuration from the image's arguments.
pub fn dns_config(args: &[String]) -> Result<DnsConfig> {
    let flags = Flags::try_parse_from(
        std::iter::once("kinet-dns".to_string()).chain(args.iter().cloned()),
    )?;
    Ok(DnsConfig {
        zone: flags.zone.trim_end_matches('.').to_string(),
        listen: flags.listen,
        metrics: flags.metrics,
        upstreams: flags.upstreams,
        cache_size: flags.cache_size,
    })
}

/// Runs the DNS server until SIGTERM (then drains, as `kinet_dns::run` does).
pub async fn run_dns_image(args: &[String]) -> Result<()> {
    let config = dns_config(args)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    kinet_dns::run(in_cluster_client()?, config).await
}

/// The API client of an add-on's pod: its service-account token and `KUBERNETES_SERVICE_*`.
pub(crate) fn in_cluster_client() -> Result<kube::Client> {
    let kube = kube::Config::incluster()
        .context("in-cluster configuration (service-account token and KUBERNETES_SERVICE_*)")?;
    kube::Client::try_from(kube).context("API client")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn defaults_serve_cluster_local_and_refuse_the_rest() {
        let c = dns_config(&[]).unwrap();
        assert_eq!(c.zone, "cluster.local");
        assert_eq!(c.listen, "0.0.0.0:53".parse().unwrap());
        assert_eq!(c.metrics, "0.0.0.0:9153".parse().unwrap());
        assert!(c.upstreams.is_empty());
        assert_eq!(c.cache_size, kinet_dns::DEFAULT_CACHE_SIZE);
    }

    #[test]
    fn flags() {
        let c = dns_config(&s(&[
            "--zone",
            "corp.example.",
            "--upstream",
            "192.0.2.1",
            "--upstream",
            "192.0.2.2:5353",
            "--upstream",
            "[2001:db8::1]:53",
            "--upstream",
            "2001:db8::2",
            "--listen",
            "127.0.0.1:1053",
            "--cache-size",
            "0",
        ]))
        .unwrap();
        assert_eq!(c.zone, "corp.example");
        let want: Vec<SocketAddr> = [
            "192.0.2.1:53",
            "192.0.2.2:5353",
            "[2001:db8::1]:53",
            "[2001:db8::2]:53",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(c.upstreams, want);
        assert_eq!(c.listen, "127.0.0.1:1053".parse().unwrap());
        assert_eq!(c.cache_size, 0);
        assert!(dns_config(&s(&["--upstream", "dns.google"])).is_err());
        assert!(dns_config(&s(&["-conf", "/etc/coredns/Corefile"])).is_err());
    }
}
