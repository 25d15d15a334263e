//! The API client the control plane's loops use: the cluster CA as the only trust root and a
//! bearer token, over HTTPS, exactly as an out-of-process controller would connect.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;

/// A client for `url` trusting only `ca_pem` and authenticating with `token`.
pub fn connect(url: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(url.parse().context("API server URL")?);
    config.root_cert = Some(vec![pem_to_der(ca_pem)?]);
    config.auth_info.token = Some(token.to_string().into());
    // Watches stay open for minutes; the default read timeout would cut them.
    config.read_timeout = Some(Duration::from_secs(295));
    Ok(kube::Client::try_from(config)?)
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("decoding the CA PEM")
}
