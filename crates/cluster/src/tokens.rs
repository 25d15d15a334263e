//! `kinet token create|list|delete` and `kinet node revoke`: the server side of joining, run
//! as the cluster's admin through the API like `kubeadm token` and `kubectl`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kinet_apiserver::join::REVOKED_CONFIGMAP;
use kinet_pki::token::{self, JoinToken, StoredToken};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use crate::state::{absolute_home, ClusterDir};
use crate::status::kubeconfig;

/// kubeadm's default token lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A client of cluster `name` with its admin kubeconfig.
pub async fn admin_client(name: &str) -> Result<Client> {
    let path = kubeconfig(name)?;
    let kc = Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Client::try_from(config).context("API client")
}

fn ca_pem(name: &str) -> Result<String> {
    let path = ClusterDir::new(&absolute_home()?, name)
        .pki()
        .join("ca.crt");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Creates a token valid for `ttl` (zero: forever) and returns it in its `K10…` form.
pub async fn create(name: &str, ttl: Duration, description: Option<&str>) -> Result<String> {
    let join = JoinToken::generate(&ca_pem(name)?);
    let expires = match ttl.is_zero() {
        true => None,
        false => Some(Utc::now() + chrono::Duration::from_std(ttl).context("the ttl is too long")?),
    };
    let secret: Secret = serde_json::from_value(token::secret_object(&join, expires, description))?;
    let api: Api<Secret> = Api::namespaced(admin_client(name).await?, token::NAMESPACE);
    api.create(&PostParams::default(), &secret)
        .await
        .context("storing the bootstrap token")?;
    Ok(join.to_string())
}

/// `kubeadm token list`'s table.
pub async fn list(name: &str) -> Result<String> {
    let ca_hash = kinet_pki::token::ca_hash(&ca_pem(name)?);
    let api: Api<Secret> = Api::namespaced(admin_client(name).await?, token::NAMESPACE);
    let lp = ListParams::default().fields(&format!("type={}", token::SECRET_TYPE));
    let now = Utc::now();
    let mut out = String::from("TOKEN\tTTL\tEXPIRES\tDESCRIPTION\n");
    for s in api.list(&lp).await?.items {
        let Some(t) = StoredToken::from_secret(&serde_json::to_value(&s)?) else {
            continue;
        };
        let (ttl, expires) = match t.expires {
            Some(at) if t.expired(now) => ("<expired>".to_string(), at.to_rfc3339()),
            Some(at) => (
                kinet_printers::human_duration((at - now).num_seconds()),
                at.to_rfc3339(),
            ),
            None => ("<forever>".to_string(), "<never>".to_string()),
        };
        let full = JoinToken {
            ca_hash: ca_hash.clone(),
            id: t.id.clone(),
            secret: t.secret().to_string(),
        };
        out.push_str(&format!("{full}\t{ttl}\t{expires}\t{}\n", t.description));
    }
    Ok(out)
}

/// Deletes the token whose id (or whole token) is `token`.
pub async fn delete(name: &str, token: &str) -> Result<()> {
    let id = JoinToken::parse(token)
        .map(|t| t.id)
        .ok()
        .or_else(|| token::split_bootstrap(token).map(|(id, _)| id.to_string()))
        .unwrap_or_else(|| token.to_string());
    let api: Api<Secret> = Api::namespaced(admin_client(name).await?, token::NAMESPACE);
    match api
        .delete(
            &format!("{}{id}", token::SECRET_PREFIX),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => bail!("no bootstrap token {id:?}"),
        Err(e) => Err(e.into()),
    }
}

/// Revokes every certificate issued to `node` through a CSR (their serials go on the API
/// server's deny list), then deletes the Node. Returns the revoked serials.
pub async fn revoke_node(name: &str, node: &str) -> Result<Vec<String>> {
    let client = admin_client(name).await?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let mut serials = Vec::new();
    for csr in csrs.list(&ListParams::default()).await?.items {
        let issued_to = kinet_controllers::certificates::node_of_request(&csr);
        let cert = csr.status.as_ref().and_then(|s| s.certificate.as_ref());
        if let (Some(n), Some(cert)) = (issued_to, cert) {
            let serial = kinet_pki::csr::serial_of_pem(&String::from_utf8_lossy(&cert.0));
            if let (true, Some(serial)) = (n == node, serial) {
                serials.push(serial);
            }
        }
    }
    if serials.is_empty() {
        bail!("no certificate was issued to node {node:?} through a CertificateSigningRequest");
    }
    let reason = format!("node {node} revoked at {}", Utc::now().to_rfc3339());
    let data: serde_json::Map<String, serde_json::Value> = serials
        .iter()
        .map(|s| (s.clone(), reason.clone().into()))
        .collect();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let patch = serde_json::json!({"data": data});
    let recorded = match maps.get_opt(REVOKED_CONFIGMAP).await? {
        // A merge patch adds these serials to the ones revoked before.
        Some(_) => maps
            .patch(
                REVOKED_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(drop),
        None => {
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": REVOKED_CONFIGMAP}, "data": data}))?;
            maps.create(&PostParams::default(), &cm).await.map(drop)
        }
    };
    recorded.context("recording the revoked serials")?;
    let nodes: Api<Node> = Api::all(client);
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(serials)
}
