//! `status.loadBalancer.ingress` of the served Ingresses: the address of the controller's own
//! LoadBalancer Service (`--publish-service`, as in ingress-nginx). Written only when it
//! differs, from a fresh read with its resourceVersion, retried on conflict, so the
//! controller never fights another writer. Of an Ingress it no longer serves, it only
//! removes its own address.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
};
use kube::api::{Api, PostParams};
use kube::Client;

/// Conflicts retried before giving up until the next sync.
const CONFLICT_RETRIES: usize = 3;

/// The addresses to publish, from the Service's own LoadBalancer status.
pub fn addresses(service: &Service) -> Vec<IngressLoadBalancerIngress> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|all| {
            all.iter()
                .map(|i| IngressLoadBalancerIngress {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                    ports: None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn current(ing: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

/// Whether `ing`'s status needs `want`.
pub fn differs(ing: &Ingress, want: &[IngressLoadBalancerIngress]) -> bool {
    current(ing) != want
}

/// Writes `want` into the Ingress `ns/name` if its stored status differs.
pub async fn publish(
    client: &Client,
    ns: &str,
    name: &str,
    want: &[IngressLoadBalancerIngress],
) -> kube::Result<()> {
    rewrite(client, ns, name, |_| Some(want.to_vec())).await
}

/// Empties the status of the Ingress `ns/name` if it still holds `ours` (and nothing else).
pub async fn clear(
    client: &Client,
    ns: &str,
    name: &str,
    ours: &[IngressLoadBalancerIngress],
) -> kube::Result<()> {
    rewrite(client, ns, name, |current| (current == ours).then(Vec::new)).await
}

/// Writes the addresses `next` picks from the stored ones (`None`: leave them), from a
/// fresh read, retried on conflict.
async fn rewrite(
    client: &Client,
    ns: &str,
    name: &str,
    next: impl Fn(&[IngressLoadBalancerIngress]) -> Option<Vec<IngressLoadBalancerIngress>>,
) -> kube::Result<()> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
    for _ in 0..CONFLICT_RETRIES {
        let Some(mut fresh) = api.get_opt(name).await? else {
            return Ok(());
        };
        let Some(want) = next(&current(&fresh)).filter(|w| differs(&fresh, w)) else {
            return Ok(());
        };
        fresh.status = Some(IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus {
                ingress: (!want.is_empty()).then_some(want),
            }),
        });
        match api
            .replace_status(name, &PostParams::default(), &fresh)
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            other => return other.map(|_| ()),
        }
    }
    tracing::warn!(ingress = %format!("{ns}/{name}"), "status update kept conflicting; retrying on the next sync");
    Ok(())
}
