//! Server certificates by SNI from the `kubernetes.io/tls` Secrets `spec.tls` names
//! (`tls.crt`/`tls.key`), with a self-signed fallback for names no Secret covers, as
//! ingress-nginx's "Fake Certificate". A Secret is parsed again only when its
//! resourceVersion changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::routes::RouteTable;

/// The fallback certificate's common name.
pub const FALLBACK_CN: &str = "kinet Ingress Controller Fake Certificate";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secret {0} has no {1}")]
    MissingKey(String, &'static str),
    #[error("secret {0}: {1}")]
    Invalid(String, String),
}

/// A certificate and key from a Secret's PEM data.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, Error> {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let data = secret.data.as_ref();
    let get = |key: &'static str| {
        data.and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| Error::MissingKey(name.clone(), key))
    };
    let (crt, key) = (get("tls.crt")?, get("tls.key")?);
    let invalid = |e: String| Error::Invalid(name.clone(), e);
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut crt.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid("tls.crt holds no certificate".into()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_slice())
        .map_err(|e| invalid(e.to_string()))?
        .ok_or_else(|| invalid("tls.key holds no private key".into()))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| invalid(e.to_string()))?;
    Ok(CertifiedKey::new(chain, signer))
}

/// A self-signed certificate for names without a Secret.
pub fn fallback() -> Result<CertifiedKey, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, FALLBACK_CN);
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// `(namespace, name)` of a Secret.
type SecretId = (String, String);

/// The certificates by host, swapped whole when the table or a Secret changes.
#[derive(Debug)]
pub struct CertStore {
    by_host: RwLock<Arc<HashMap<String, Arc<CertifiedKey>>>>,
    fallback: Arc<CertifiedKey>,
    /// Keys parsed from Secrets, by the resourceVersion they were parsed at: a rebuild for
    /// any other change reuses them instead of parsing PEM and keys again.
    parsed: Mutex<HashMap<SecretId, (String, Arc<CertifiedKey>)>>,
}

impl CertStore {
    pub fn new(fallback: CertifiedKey) -> CertStore {
        CertStore {
            by_host: RwLock::default(),
            fallback: Arc::new(fallback),
            parsed: Mutex::default(),
        }
    }

    /// Loads the certificate of every `spec.tls` host from `secrets`; a missing or broken
    /// Secret leaves its host on the fallback, and is returned for the Ingress's events.
    pub fn update(&self, table: &RouteTable, secrets: &[&Secret]) -> Vec<(String, Error)> {
        let mut problems = Vec::new();
        let mut by_host = HashMap::new();
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        let mut used: HashMap<SecretId, (String, Arc<CertifiedKey>)> = HashMap::new();
        for (host, r) in table.tls_secrets() {
            let id = (r.namespace.clone(), r.name.clone());
            let found = secrets.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(&r.namespace)
                    && s.metadata.name.as_deref() == Some(&r.name)
            });
            let Some(secret) = found else {
                let name = format!("{}/{}", r.namespace, r.name);
                problems.push((host.clone(), Error::MissingKey(name, "object")));
                continue;
            };
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            let cached = [used.get(&id), parsed.get(&id)]
                .into_iter()
                .flatten()
                .find(|(v, _)| !version.is_empty() && *v == version)
                .map(|(_, k)| k.clone());
            let key = match cached {
                Some(k) => k,
                None => match certified_key(secret) {
                    Ok(k) => Arc::new(k),
                    Err(e) => {
                        problems.push((host.clone(), e));
                        continue;
                    }
                },
            };
            used.insert(id, (version, key.clone()));
            by_host.insert(host.clone(), key);
        }
        // Only the Secrets in use stay parsed.
        *parsed = used;
        *self.by_host.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_host);
        problems
    }

    fn lookup(&self, server_name: &str) -> Arc<CertifiedKey> {
        let map = self
            .by_host
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let name = server_name.to_ascii_lowercase();
        map.get(&name)
            .or_else(|| {
                let (_, domain) = name.split_once('.')?;
                map.get(&format!("*.{domain}"))
            })
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match hello.server_name() {
            Some(name) => self.lookup(name),
            None => self.fallback.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    /// A `kubernetes.io/tls` Secret with a self-signed certificate for `names`.
    fn tls_secret(name: &str, names: &[&str]) -> Secret {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s.type_ = Some("kubernetes.io/tls".into());
        s.data = Some(
            [
                ("tls.crt".to_string(), ByteString(cert.pem().into_bytes())),
                (
                    "tls.key".to_string(),
                    ByteString(key.serialize_pem().into_bytes()),
                ),
            ]
            .into(),
        );
        s
    }

    fn table(tls: &[(&str, &str)]) -> RouteTable {
        let tls: Vec<serde_json::Value> = tls
            .iter()
            .map(|(host, secret)| serde_json::json!({"hosts": [host], "secretName": secret}))
            .collect();
        let ing: k8s_openapi::api::networking::v1::Ingress =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"tls": tls},
            }))
            .unwrap();
        let class: k8s_openapi::api::networking::v1::IngressClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kinet", "annotations": {crate::class::DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": crate::CONTROLLER},
        }))
        .unwrap();
        RouteTable::build(
            &crate::Objects {
                ingresses: &[&ing],
                classes: &[&class],
                services: &[],
                slices: &[],
            },
            crate::CONTROLLER,
        )
    }

    #[test]
    fn certificates_by_exact_and_wildcard_name_else_fallback() {
        let store = CertStore::new(fallback().unwrap());
        let exact = tls_secret("exact", &["foo.bar.com"]);
        let wild = tls_secret("wild", &["*.foo.com"]);
        let t = table(&[
            ("foo.bar.com", "exact"),
            ("*.foo.com", "wild"),
            ("gone.example.com", "missing"),
        ]);
        let problems = store.update(&t, &[&exact, &wild]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "gone.example.com");
        let der = |name: &str| store.lookup(name).cert[0].clone();
        let first = |s: &Secret| {
            let pem = &s.data.as_ref().unwrap()["tls.crt"].0;
            rustls_pemfile::certs(&mut pem.as_slice())
                .next()
                .unwrap()
                .unwrap()
        };
        assert_eq!(der("FOO.bar.com"), first(&exact));
        assert_eq!(der("x.foo.com"), first(&wild));
        assert_eq!(der("a.b.foo.com"), store.fallback.cert[0]);
        assert_eq!(der("gone.example.com"), store.fallback.cert[0]);
    }

    #[test]
    fn keys_are_parsed_again_only_for_a_new_resource_version() {
        let store = CertStore::new(fallback().unwrap());
        let t = table(&[("a.example.com", "web"), ("b.example.com", "web")]);
        let mut s = tls_secret("web", &["a.example.com", "b.example.com"]);
        s.metadata.resource_version = Some("7".into());
        assert!(store.update(&t, &[&s]).is_empty());
        let first = store.lookup("a.example.com");
        assert!(Arc::ptr_eq(&first, &store.lookup("b.example.com")));
        assert!(store.update(&t, &[&s]).is_empty());
        assert!(Arc::ptr_eq(&first, &store.lookup("a.example.com")));
        // A new version with other data is parsed: the new certificate is served.
        let renewed = tls_secret("web", &["a.example.com"]);
        s.data = renewed.data.clone();
        s.metadata.resource_version = Some("8".into());
        assert!(store.update(&t, &[&s]).is_empty());
        let now = store.lookup("a.example.com");
        assert!(!Arc::ptr_eq(&first, &now));
        assert_ne!(now.cert[0], first.cert[0]);
    }

    #[test]
    fn broken_secrets_are_reported() {
        let mut s = tls_secret("web", &["a.example.com"]);
        s.data.as_mut().unwrap().remove("tls.key");
        assert!(matches!(
            certified_key(&s),
            Err(Error::MissingKey(_, "tls.key"))
        ));
        s.data
            .as_mut()
            .unwrap()
            .insert("tls.key".into(), ByteString(b"not pem".to_vec()));
        assert!(matches!(certified_key(&s), Err(Error::Invalid(..))));
    }
}
