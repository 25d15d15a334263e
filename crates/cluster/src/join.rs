//! `kinet join`: a host's trust and credentials, given nothing but the server URL and a join
//! token, in k3s's and the kubelet's TLS bootstrap order:
//!
//! 1. fetch `/cacerts` without trusting anything yet, and compare its SHA-256 with the hash the
//!    token pins; refuse to go on (and to send the token) if they differ;
//! 2. from then on trust only that CA, and authenticate with the bootstrap token;
//! 3. create a CertificateSigningRequest for `system:node:<name>` (signer
//!    `kubernetes.io/kube-apiserver-client-kubelet`), which the cluster approves and signs;
//! 4. write the node's kubeconfig (the issued certificate and the key that never left the host).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kinet_pki::token::JoinToken;
use kinet_pki::{kubeconfig, Credentials};
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, Condition};
use kube::{Api, Client, Config, ResourceExt};

/// How long the cluster has to approve and sign the request.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);

/// What `join` leaves behind.
#[derive(Debug)]
pub struct Joined {
    /// The node's kubeconfig, with its client certificate.
    pub kubeconfig: PathBuf,
    /// The CSR that issued it.
    pub request: String,
}

/// Establishes trust in `server` from `token` and obtains node `node`'s client certificate,
/// written as a kubeconfig into `state_dir`.
pub async fn join(server: &str, token: &str, node: &str, state_dir: &Path) -> Result<Joined> {
    let token = JoinToken::parse(token).context("the join token")?;
    let url: http::Uri = server.parse().context("the server URL")?;
    let ca_pem = fetch_ca(&url).await?;
    if !token.pins(&ca_pem) {
        bail!(
            "the server's CA (sha256 {}) is not the one the join token pins (sha256 {}): \
             refusing to send the token to it",
            kinet_pki::token::ca_hash(&ca_pem),
            token.ca_hash
        );
    }
    let bootstrap = client(&url, &ca_pem, Credentials::Token(token.bearer())).await?;
    let (csr_pem, key_pem) = kinet_pki::csr::node_request(node)?;
    let request: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": base64(&csr_pem),
            "signerName": kinet_controllers::certificates::KUBELET_CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }))?;
    let csrs: Api<CertificateSigningRequest> = Api::all(bootstrap);
    let created = csrs
        .create(&PostParams::default(), &request)
        .await
        .map_err(refused)?;
    let name = created.name_any();
    let issued = tokio::time::timeout(
        ISSUE_TIMEOUT,
        await_condition(csrs, &name, issued_or_refused()),
    )
    .await
    .with_context(|| {
        format!("CertificateSigningRequest {name} was not signed within {ISSUE_TIMEOUT:?}")
    })??
    .with_context(|| format!("CertificateSigningRequest {name} was deleted"))?;
    let status = issued.status.unwrap_or_default();
    let Some(cert) = status.certificate else {
        let why = status
            .conditions
            .into_iter()
            .flatten()
            .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        bail!("CertificateSigningRequest {name} was not issued ({why})");
    };
    let cert_pem = String::from_utf8(cert.0).context("the issued certificate")?;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join("kubeconfig");
    let text = kubeconfig(
        node,
        server,
        &ca_pem,
        &Credentials::ClientCert { cert_pem, key_pem },
    );
    kinet_pki::write_file(&path, &text, 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Joined {
        kubeconfig: path,
        request: name,
    })
}

/// The CA bundle from `/cacerts`, read before anything about the server is trusted: the
/// caller checks it against the token's hash before using it.
async fn fetch_ca(url: &http::Uri) -> Result<String> {
    let mut config = Config::new(url.clone());
    config.accept_invalid_certs = true;
    let untrusted = Client::try_from(config)?;
    let req = http::Request::get(kinet_apiserver::join::CACERTS_PATH).body(Vec::new())?;
    untrusted
        .request_text(req)
        .await
        .with_context(|| format!("fetching the cluster CA from {url}/cacerts"))
}

async fn client(url: &http::Uri, ca_pem: &str, creds: Credentials) -> Result<Client> {
    let text = kubeconfig("join", &url.to_string(), ca_pem, &creds);
    let kc: kube::config::Kubeconfig = serde_yaml_ng::from_str(&text)?;
    let config =
        Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The server's answer to the token, said plainly.
fn refused(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 401 => anyhow::anyhow!(
            "the server refused the join token ({}): it is unknown, deleted or expired; \
             create one with `kinet token create` on the server",
            s.message
        ),
        kube::Error::Api(s) if s.code == 403 => {
            anyhow::anyhow!(
                "the join token may not request a node certificate: {}",
                s.message
            )
        }
        e => anyhow::Error::from(e).context("creating the CertificateSigningRequest"),
    }
}

fn issued_or_refused() -> impl Condition<CertificateSigningRequest> {
    |csr: Option<&CertificateSigningRequest>| {
        let Some(status) = csr.and_then(|c| c.status.as_ref()) else {
            return false;
        };
        status.certificate.is_some()
            || status
                .conditions
                .iter()
                .flatten()
                .any(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
    }
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
