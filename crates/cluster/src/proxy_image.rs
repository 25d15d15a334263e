//! The `kinet-proxy` image's process: `kinet image-run kinet-proxy:<v> -- <args>` runs the
//! service proxy with in-cluster credentials in a DaemonSet's pod on the host network
//! (`kinet manifests proxy`), as kube-proxy runs. Its flags are kube-proxy's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Node;
use kinet_proxy::ProxyMode;
use kinet_types::wellknown::{PROXY_HEALTHZ_PORT, PROXY_METRICS_PORT};

/// The image's flags; everything has a default.
#[derive(Debug, Parser)]
#[command(
    name = "kinet-proxy",
    about = "Service proxy for Kubernetes (kube-proxy)"
)]
struct Flags {
    /// The Node whose Services this proxy programs; default `$NODE_NAME`.
    #[arg(long)]
    hostname_override: Option<String>,
    #[arg(long, default_value = "nftables", value_parser = crate::proxy_mode::parse)]
    proxy_mode: ProxyMode,
    /// The pods' range, telling pod traffic from the rest.
    #[arg(long, default_value = kinet_types::wellknown::CLUSTER_CIDR)]
    cluster_cidr: String,
    /// Serve only the Services whose `service.kubernetes.io/service-proxy-name` label has
    /// this value (beside kube-proxy). None: every Service without the label.
    #[arg(long)]
    service_proxy_name: Option<String>,
    /// The nftables table (family `ip`).
    #[arg(long, default_value = crate::agent::PROXY_TABLE)]
    table: String,
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], PROXY_METRICS_PORT)))]
    metrics_bind_address: SocketAddr,
    /// `/healthz` and `/livez`.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], PROXY_HEALTHZ_PORT)))]
    healthz_bind_address: SocketAddr,
}

fn flags(args: &[String]) -> Result<Flags> {
    Ok(Flags::try_parse_from(
        std::iter::once("kinet-proxy".to_string()).chain(args.iter().cloned()),
    )?)
}

/// The node a DaemonSet's pod runs for: the flag, else `NODE_NAME` (the downward API's
/// `spec.nodeName`).
pub(crate) fn node_name(flag: Option<String>) -> Result<String> {
    flag.or_else(|| std::env::var("NODE_NAME").ok())
        .filter(|n| !n.is_empty())
        .context("no node name: pass --hostname-override or set NODE_NAME (spec.nodeName)")
}

/// Runs the proxy until SIGTERM; the rules stay in place, as kube-proxy leaves them.
pub async fn run_proxy_image(args: &[String]) -> Result<()> {
    let flags = flags(args)?;
    let client = crate::dns_image::in_cluster_client()?;
    let name = node_name(flags.hostname_override)?;
    let node = kube::Api::<Node>::all(client.clone())
        .get(&name)
        .await
        .with_context(|| format!("reading Node {name}"))?;
    let fallback = kinet_proxy::NodeInfo {
        name,
        node_ips: Vec::new(),
        pod_cidr: None,
    };
    let node = kinet_proxy::node_info(Some(&node), &fallback);
    // The pod is on the host network: its own namespace is the node's.
    let netns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
    let applier = kinet_proxy::Applier::new(netns, &flags.table);
    let config = kinet_proxy::ProxyConfig {
        table: flags.table,
        cluster_cidr: flags.cluster_cidr,
        ..Default::default()
    };
    let metrics = Arc::new(kinet_proxy::Metrics::default());
    let healthz = Arc::new(kinet_proxy::ProxyHealthz::default());
    let opts = kinet_proxy::SyncOptions {
        metrics: metrics.clone(),
        healthz: healthz.clone(),
        mode: flags.proxy_mode,
        service_proxy_name: flags.service_proxy_name,
        ..Default::default()
    };
    let metrics_listener = tokio::net::TcpListener::bind(flags.metrics_bind_address)
        .await
        .context("binding the metrics address")?;
    let healthz_listener = tokio::net::TcpListener::bind(flags.healthz_bind_address)
        .await
        .context("binding the healthz address")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = kinet_proxy::run_with(client, node, config, applier, opts) => r.context("service proxy"),
        _ = kinet_proxy::serve_metrics(metrics_listener, vec![metrics]) => bail!("the metrics server ended"),
        _ = kinet_proxy::serve_healthz(healthz_listener, healthz) => bail!("the healthz server ended"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxy_flags() {
        let f = flags(&[]).unwrap();
        assert_eq!(f.proxy_mode, ProxyMode::Nftables);
        assert_eq!(f.service_proxy_name, None);
        assert_eq!(f.table, "kinet");
        assert_eq!(f.healthz_bind_address.port(), 10256);
        // The DaemonSet's arguments parse.
        let addon = kinet_manifests::proxy::ProxyAddon {
            beside_kube_proxy: true,
            ..Default::default()
        };
        let f = flags(&addon.args()).unwrap();
        assert_eq!(f.proxy_mode, ProxyMode::Nftables);
        assert_eq!(f.service_proxy_name.as_deref(), Some("kinet"));
        assert_eq!(f.metrics_bind_address.port(), addon.ports().0);
        assert_eq!(f.healthz_bind_address.port(), addon.ports().1);
        assert!(flags(&["--proxy-mode".into(), "ipvs".into()]).is_err());
        assert_eq!(
            node_name(Some("n1".into())).unwrap(),
            "n1",
            "the flag wins over NODE_NAME"
        );
    }
}
