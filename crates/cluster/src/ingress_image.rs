//! The `kinet-ingress` image's process: `kinet image-run kinet-ingress:<v> -- <args>` runs the
//! ingress controller with in-cluster credentials, as ingress-nginx runs in its pod.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kinet_ingress::drain::Timing;
use kinet_ingress::{Config, Limits};

/// The image's flags; everything has a default, so a bare `kinet-ingress` serves class
/// `kinet.dev/ingress` on :80, :443 and :10254.
#[derive(Debug, Parser)]
#[command(name = "kinet-ingress", about = "Ingress controller for Kubernetes")]
struct Flags {
    #[arg(long, default_value = "0.0.0.0:80")]
    http: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:443")]
    https: SocketAddr,
    /// `/metrics` and `/healthz`.
    #[arg(long, default_value = "0.0.0.0:10254")]
    metrics: SocketAddr,
    /// The IngressClass `spec.controller` this controller serves.
    #[arg(long, default_value = kinet_ingress::CONTROLLER)]
    controller_class: String,
    /// `namespace/name` of the LoadBalancer Service whose address the served Ingresses get
    /// in `status.loadBalancer` (ingress-nginx's flag). None: status is left alone.
    #[arg(long, value_parser = parse_service)]
    publish_service: Option<(String, String)>,
    /// Largest request body in bytes (more gets 413).
    #[arg(long, default_value_t = Limits::default().max_body)]
    max_body_size: u64,
    /// Seconds an endpoint may take to start its response (then 504).
    #[arg(long, default_value_t = Limits::default().response_timeout.as_secs())]
    upstream_timeout: u64,
    /// Seconds from SIGTERM (readiness failing) until the listeners close.
    #[arg(long, default_value_t = Timing::default().delay.as_secs())]
    shutdown_delay: u64,
    /// Seconds requests in flight then get to finish.
    #[arg(long, default_value_t = Timing::default().grace.as_secs())]
    shutdown_grace_period: u64,
}

fn parse_service(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.into(), name.into())),
        _ => Err(format!("{s:?} is not namespace/name")),
    }
}

/// The controller's configuration from the image's arguments.
pub fn ingress_config(args: &[String]) -> Result<Config> {
    let flags = Flags::try_parse_from(
        std::iter::once("kinet-ingress".to_string()).chain(args.iter().cloned()),
    )?;
    Ok(Config {
        http: flags.http,
        https: flags.https,
        metrics: flags.metrics,
        controller: flags.controller_class,
        publish_service: flags.publish_service,
        limits: Limits {
            max_body: flags.max_body_size,
            response_timeout: Duration::from_secs(flags.upstream_timeout),
        },
        drain: Timing {
            delay: Duration::from_secs(flags.shutdown_delay),
            grace: Duration::from_secs(flags.shutdown_grace_period),
        },
    })
}

/// Runs the controller until SIGTERM.
pub async fn run_ingress_image(args: &[String]) -> Result<()> {
    let config = ingress_config(args)?;
    kinet_ingress::run(crate::dns_image::in_cluster_client()?, config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let c = ingress_config(&[]).unwrap();
        assert_eq!(c.http, "0.0.0.0:80".parse().unwrap());
        assert_eq!(c.controller, "kinet.dev/ingress");
        assert!(c.publish_service.is_none());
        assert_eq!(c.drain.delay, Duration::from_secs(2));
        let args: Vec<String> = [
            "--publish-service",
            "kinet-ingress/kinet-ingress",
            "--http",
            "127.0.0.1:8080",
        ]
        .map(String::from)
        .into();
        let c = ingress_config(&args).unwrap();
        assert_eq!(
            c.publish_service,
            Some(("kinet-ingress".into(), "kinet-ingress".into()))
        );
        assert_eq!(c.http, "127.0.0.1:8080".parse().unwrap());
        assert!(ingress_config(&["--publish-service".into(), "nameonly".into()]).is_err());
    }
}
