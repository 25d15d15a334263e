//! A real cluster filled with many Services through its API, as the 10k-Service benchmarks and
//! the live acceptance test need them: concurrent creates with the kube client, each Service
//! selecting pods no one runs (so the endpoints loop gives each an empty EndpointSlice). They
//! live in a namespace of their own: a pod gets an environment variable per Service of its
//! namespace (service links), and 10,000 of them would overflow a container's environment, as
//! upstream.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

/// Creates in flight at once: enough to keep the API server's writer batching.
const CONCURRENCY: usize = 32;

/// A client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// The namespace of the filler Services.
pub const NAMESPACE: &str = "fill";

/// The name of filler Service `i`.
pub fn service_name(i: usize) -> String {
    format!("fill-{i}")
}

/// Creates the filler Services numbered `range` in [`NAMESPACE`] (made if absent): ClusterIP,
/// port 80 to 8080, selecting `app: fill-<i>`.
pub async fn create_services(client: &Client, range: Range<usize>) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        other => drop(other?),
    }
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(range.map(Ok::<usize, anyhow::Error>))
        .try_for_each_concurrent(CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let name = service_name(i);
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"selector": {"app": name},
                             "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
                }))?;
                api.create(&PostParams::default(), &svc).await?;
                Ok(())
            }
        })
        .await
}

/// How many Services the cluster holds, in every namespace.
pub async fn count_services(client: &Client) -> Result<usize> {
    let api: Api<Service> = Api::all(client.clone());
    let mut count = 0;
    let mut params = kube::api::ListParams::default().limit(2000);
    loop {
        let list = api.list_metadata(&params).await?;
        count += list.items.len();
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(count),
        }
    }
}

/// The distinct addresses of the proxy's Service range a listing (`nft list set ip kinet
/// cluster-ips`) names: how many ClusterIPs a node's proxy has programmed.
pub fn cluster_ips_in(listing: &str) -> usize {
    let range = kinet_proxy::ProxyConfig::default().service_cidr;
    let (net, len) = range.split_once('/').expect("the Service range is a CIDR");
    let net: Ipv4Addr = net.parse().expect("the Service range's address");
    let len: u32 = len.parse().expect("the Service range's length");
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    let set: std::collections::BTreeSet<Ipv4Addr> = listing
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse::<Ipv4Addr>().ok())
        .filter(|ip| u32::from(*ip) & mask == u32::from(net) & mask)
        .collect();
    set.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips_in_counts_distinct_addresses_of_the_service_range() {
        let listing =
            "set cluster-ips {\n\ttype ipv4_addr\n\telements = { 10.96.0.1, 10.96.0.10,\n\
                       \t\t10.96.3.7, 10.96.0.1, 10.244.0.3 }\n}\n";
        assert_eq!(cluster_ips_in(listing), 3);
        assert_eq!(cluster_ips_in(""), 0);
    }
}
