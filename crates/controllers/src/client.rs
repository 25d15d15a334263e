//! The API client the control plane's loops use: the cluster CA as the only trust root and a
//! bearer token, over HTTPS, exactly as an out-of-process controller would connect.

use std::time::Duration;

use base64::Engine;

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("API server URL {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("decoding the CA PEM: {0}")]
    CaPem(#[from] base64::DecodeError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// A client for `url` trusting only `ca_pem` and authenticating with `token`.
pub fn connect(url: &str, ca_pem: &str, token: &str) -> Result<kube::Client, ConnectError> {
    Ok(kube::Client::try_from(config(url, ca_pem, token)?)?)
}

/// The configuration [`connect`] makes its client from.
pub fn config(url: &str, ca_pem: &str, token: &str) -> Result<kube::Config, ConnectError> {
    let uri = url.parse().map_err(|source| ConnectError::Url {
        url: url.to_string(),
        source,
    })?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(vec![pem_to_der(ca_pem)?]);
    config.auth_info.token = Some(token.to_string().into());
    // Watches stay open for minutes; the default read timeout would cut them.
    config.read_timeout = Some(Duration::from_secs(295));
    Ok(config)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            connect("not a url", "", "t"),
            Err(ConnectError::Url { .. })
        ));
        assert!(matches!(
            connect(
                "https://127.0.0.1:6443",
                "-----BEGIN-----\n%%%\n-----END-----",
                "t"
            ),
            Err(ConnectError::CaPem(_))
        ));
    }
}
