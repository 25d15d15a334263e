//! Outside the cluster: `kinet external exec` runs a command in the cluster's "outside"
//! namespace (a client on the underlay that is no node, made at `up`, removed at `down`), and
//! the default LoadBalancer pool `kinet serve` writes for the allocator.

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kinet_controllers::loadbalancer::{default_range, POOL_CONFIGMAP, POOL_KEY, POOL_NAMESPACE};
use kinet_ipam::Ipv4Cidr;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

use crate::nodes;
use crate::state::{self, absolute_home, ClusterDir};

/// `kinet external exec`: runs `command` in the outside namespace and returns its exit code.
pub fn exec(name: &str, command: &[String]) -> Result<i32> {
    state::validate_name(name)?;
    let home = absolute_home()?;
    let dir = ClusterDir::new(&home, name);
    if !dir.exists() {
        bail!("no cluster named \"{name}\" under {}", home.display());
    }
    let info = dir.load_info()?;
    let plan = nodes::recorded_plan(&info);
    if !kinet_netns::NetNs::exists(&plan.outside_netns) {
        bail!(
            "cluster \"{name}\" has no outside namespace {} (it needs nodes and a running `kinet up`)",
            plan.outside_netns
        );
    }
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", plan.outside_netns))
        .args(command)
        .status()
        .context("running nsenter")?;
    Ok(status.code().unwrap_or(1))
}

/// Creates the LoadBalancer pool ConfigMap with the default range of `underlay` unless it
/// exists (an edited pool is kept). Failures are logged: the allocator then assigns nothing.
pub async fn ensure_lb_pool(client: &kube::Client, underlay: Ipv4Cidr) {
    let (first, last) = default_range(underlay);
    let cm: ConfigMap = match serde_json::from_value(json!({
        "metadata": {"name": POOL_CONFIGMAP, "namespace": POOL_NAMESPACE},
        "data": {POOL_KEY: format!("{first}-{last}")},
    })) {
        Ok(cm) => cm,
        Err(e) => {
            tracing::error!(error = %e, "load balancer pool ConfigMap");
            return;
        }
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), POOL_NAMESPACE);
    match api.create(&PostParams::default(), &cm).await {
        Ok(_) => tracing::info!(pool = %format!("{first}-{last}"), "load balancer pool created"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(error = %e, "could not create the load balancer pool"),
    }
}
