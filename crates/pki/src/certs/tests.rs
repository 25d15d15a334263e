//! The certificates must pass a real verifier (rustls/webpki), not just parse.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{client::WebPkiServerVerifier, RootCertStore};

use crate::{default_server_sans, Pki, PkiError};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verify_server(pki: &Pki, ca_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(&der(&pki.server_cert_pem), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

pub(crate) fn verify_client(cert_pem: &str, ca_pem: &str) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .unwrap();
    verifier
        .verify_client_cert(&der(cert_pem), &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn server_cert_verifies_for_every_san_and_nothing_else() {
    let pki = Pki::generate("demo", &default_server_sans("10.96.0.1")).unwrap();
    for name in default_server_sans("10.96.0.1") {
        verify_server(&pki, &pki.ca_cert_pem, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify_server(&pki, &pki.ca_cert_pem, "example.com").is_err());
    assert!(verify_server(&pki, &pki.ca_cert_pem, "10.96.0.2").is_err());
}

#[test]
fn certs_do_not_verify_against_another_clusters_ca() {
    let a = Pki::generate("a", &default_server_sans("10.96.0.1")).unwrap();
    let b = Pki::generate("b", &default_server_sans("10.96.0.1")).unwrap();
    assert!(verify_server(&a, &b.ca_cert_pem, "localhost").is_err());
    assert!(verify_client(&a.admin_cert_pem, &b.ca_cert_pem).is_err());
}

#[test]
fn admin_and_issued_client_certs_verify_after_a_save_load() {
    let dir = tempfile::tempdir().unwrap();
    Pki::generate("demo", &default_server_sans("10.96.0.1"))
        .unwrap()
        .save(dir.path())
        .unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    verify_client(&pki.admin_cert_pem, &pki.ca_cert_pem).unwrap();
    let (cert, key) = pki
        .issue_client("system:node:n1", &["system:nodes"])
        .unwrap();
    verify_client(&cert, &pki.ca_cert_pem).unwrap();
    assert!(key.contains("PRIVATE KEY"));
    // A serving cert is not a client cert and vice versa.
    assert!(verify_client(&pki.server_cert_pem, &pki.ca_cert_pem).is_err());
}

#[test]
fn subjects_carry_user_and_group() {
    let pki = Pki::generate("demo", &[]).unwrap();
    let admin = der(&pki.admin_cert_pem);
    assert!(contains(&admin, b"kubernetes-admin"));
    assert!(contains(&admin, b"system:masters"));
    let (cert, _) = pki.issue_client("alice", &[]).unwrap();
    let cert = der(&cert);
    assert!(contains(&cert, b"alice"));
    assert!(!contains(&cert, b"system:masters"));
}

#[test]
fn the_kubelet_client_cert_names_the_api_server_and_verifies() {
    let pki = Pki::generate("demo", &[]).unwrap();
    let (cert, key) = pki.issue_kubelet_client().unwrap();
    verify_client(&cert, &pki.ca_cert_pem).unwrap();
    let der = der(&cert);
    assert!(contains(&der, b"kube-apiserver-kubelet-client"));
    assert!(!contains(&der, b"system:masters"));
    assert!(key.contains("PRIVATE KEY"));
}

#[test]
fn more_than_one_group_is_refused() {
    let pki = Pki::generate("demo", &[]).unwrap();
    let err = pki.issue_client("bob", &["a", "b"]).unwrap_err();
    assert!(matches!(err, PkiError::TooManyGroups(2)));
}

#[test]
fn invalid_san_is_named() {
    let bad = "bäd.example".to_string();
    match Pki::generate("demo", std::slice::from_ref(&bad)) {
        Err(PkiError::InvalidSan(s)) => assert_eq!(s, bad),
        other => panic!("expected InvalidSan, got {other:?}"),
    }
}

#[test]
fn validity_is_ten_years_for_the_ca_and_one_for_leaves() {
    let ca = super::ca_params(super::CA_VALIDITY).unwrap();
    let leaf = super::leaf_params(Vec::new()).unwrap();
    let days = |p: &rcgen::CertificateParams| (p.not_after - p.not_before).whole_days();
    // Both start an hour in the past.
    assert!((3650..=3651).contains(&days(&ca)), "{}", days(&ca));
    assert!((365..=366).contains(&days(&leaf)), "{}", days(&leaf));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
