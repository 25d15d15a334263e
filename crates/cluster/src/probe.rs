//! Readiness probing: `GET /readyz` over TLS, trusting only the cluster CA.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, IpAddr, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One attempt may not hang the wait loop.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The status line is all we need.
const MAX_RESPONSE: usize = 64 * 1024;

/// Probes one of a cluster's API servers on its loopback address.
pub struct Probe {
    connector: TlsConnector,
    addr: std::net::SocketAddr,
    token: String,
}

impl Probe {
    pub fn new(ca_pem: &str, addr: std::net::SocketAddr, token: String) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.context("parsing the cluster CA")?)?;
        }
        if roots.is_empty() {
            bail!("the cluster CA file has no certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Probe {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
            token,
        })
    }

    /// The HTTP status of `GET /readyz`, or why there was none.
    pub async fn readyz(&self) -> Result<u16> {
        tokio::time::timeout(ATTEMPT_TIMEOUT, self.get("/readyz"))
            .await
            .map_err(|_| anyhow!("no answer within {ATTEMPT_TIMEOUT:?}"))?
    }

    async fn get(&self, path: &str) -> Result<u16> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::IpAddress(IpAddr::from(self.addr.ip()));
        let mut tls = self.connector.connect(name, tcp).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             User-Agent: kinet\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        );
        tls.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_RESPONSE {
            let n = tls.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_status(&buf)
    }
}

/// The status code of an HTTP/1.x response.
pub fn parse_status(response: &[u8]) -> Result<u16> {
    let line = response
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse()
            .with_context(|| format!("bad status line {line:?}")),
        _ => bail!("not an HTTP response: {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\nok").unwrap(), 200);
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n").unwrap(),
            503
        );
        assert!(parse_status(b"").is_err());
        assert!(parse_status(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 abc\r\n").is_err());
    }

    #[test]
    fn rejects_a_ca_without_certificates() {
        assert!(Probe::new("not pem", "127.0.0.1:1".parse().unwrap(), String::new()).is_err());
    }

    fn loopback(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error() {
        // Bind then drop to find a port with (very likely) nothing on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pki = kinet_pki::Pki::generate("p", &["127.0.0.1".into()]).unwrap();
        let probe = Probe::new(&pki.ca_cert_pem, loopback(port), "t".into()).unwrap();
        assert!(probe.readyz().await.is_err());
    }

    /// A one-shot TLS server on 127.0.0.1 with `pki`'s serving cert; returns its port.
    async fn serve_once(pki: &kinet_pki::Pki, response: &'static str) -> u16 {
        use rustls::pki_types::PrivateKeyDer;
        let certs = vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let n = tls.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]);
            // Only answer what the probe is meant to send.
            let ok = request.starts_with("GET /readyz HTTP/1.1\r\n")
                && request.contains("Authorization: Bearer tok\r\n");
            let reply = if ok {
                response
            } else {
                "HTTP/1.1 400 Bad Request\r\n\r\n"
            };
            tls.write_all(reply.as_bytes()).await.unwrap();
            tls.shutdown().await.ok();
        });
        port
    }

    #[tokio::test]
    async fn reads_the_status_over_tls_trusting_the_cluster_ca() {
        let pki = kinet_pki::Pki::generate("p", &["127.0.0.1".into()]).unwrap();
        let port = serve_once(&pki, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let probe = Probe::new(&pki.ca_cert_pem, loopback(port), "tok".into()).unwrap();
        assert_eq!(probe.readyz().await.unwrap(), 200);

        let port = serve_once(&pki, "HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
        let probe = Probe::new(&pki.ca_cert_pem, loopback(port), "tok".into()).unwrap();
        assert_eq!(probe.readyz().await.unwrap(), 500);
    }

    #[tokio::test]
    async fn refuses_a_server_signed_by_another_ca() {
        let server = kinet_pki::Pki::generate("a", &["127.0.0.1".into()]).unwrap();
        let other = kinet_pki::Pki::generate("b", &["127.0.0.1".into()]).unwrap();
        let port = serve_once(&server, "HTTP/1.1 200 OK\r\n\r\n").await;
        let probe = Probe::new(&other.ca_cert_pem, loopback(port), "tok".into()).unwrap();
        assert!(probe.readyz().await.is_err());
    }
}
