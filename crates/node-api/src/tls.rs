//! The agent's TLS: a self-signed serving certificate made at start (the API server does not
//! verify it, as kube-apiserver without `--kubelet-certificate-authority`), and a required
//! client certificate, signed by the cluster CA and naming the API server. Pods can reach node
//! addresses, so nobody else may ask the agent to run commands.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::{Error, Result};

/// The common name the API server's kubelet client certificate carries (kubeadm's name).
pub const API_SERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// A server config with a fresh self-signed certificate for `sans`, requiring client
/// certificates signed by the CA in `ca_pem`. HTTP/1.1 only: exec, attach and port-forward
/// are upgrades.
pub fn server_config(ca_pem: &str, sans: &[String]) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let cas = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem(format!("reading the cluster CA: {e}")))?;
    if cas.is_empty() {
        return Err(Error::Pem("no certificate in the cluster CA PEM".into()));
    }
    for ca in cas {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Pem(format!("client certificate verifier: {e}")))?;
    let cert = rcgen::generate_simple_self_signed(sans.to_vec())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The API server's side: a client config presenting the kubelet client certificate (CN
/// [`API_SERVER_CLIENT_CN`], signed by the cluster CA). The agent's certificate is self-signed,
/// so it is not verified, as kube-apiserver does without `--kubelet-certificate-authority`.
pub fn client_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem(format!("reading the kubelet client certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| Error::Pem(format!("reading the kubelet client key: {e}")))?
        .ok_or_else(|| Error::Pem("no private key in the kubelet client key PEM".into()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any server certificate, but still checks the handshake signatures with it.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a verified client certificate is the API server's; Err says why not.
pub fn check_client(cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let cns: Vec<&str> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    if cns == [API_SERVER_CLIENT_CN] {
        Ok(())
    } else {
        Err(format!(
            "client certificate {cns:?} is not the API server's ({API_SERVER_CLIENT_CN:?})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn only_the_api_servers_name_passes() {
        let pki = kinet_pki::Pki::generate("t", &[]).unwrap();
        let (apiserver, _) = pki.issue_client(API_SERVER_CLIENT_CN, &[]).unwrap();
        assert_eq!(check_client(&der(&apiserver)), Ok(()));
        let err = check_client(&der(&pki.admin_cert_pem)).unwrap_err();
        assert!(err.contains("kubernetes-admin"), "{err}");
    }

    #[test]
    fn builds_with_the_cluster_ca_only() {
        let pki = kinet_pki::Pki::generate("t", &[]).unwrap();
        assert!(server_config(&pki.ca_cert_pem, &["10.0.0.1".into()]).is_ok());
        assert!(server_config("", &["10.0.0.1".into()]).is_err());
    }
}
