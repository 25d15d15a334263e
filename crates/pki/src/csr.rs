//! Node client certificates through CertificateSigningRequests, as the kubelet's TLS
//! bootstrap: the joining node makes a key and a PKCS#10 request for CN `system:node:<name>`,
//! O `system:nodes`; the cluster's signer issues a client certificate from the CA.

use std::time::Duration;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::certs::{ca_params, dn, set_validity, CA_VALIDITY};
use crate::{Pki, PkiError};

/// The group node certificates carry.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// A request subject: CN and every O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

/// A certificate the signer issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// The serial number, lower-case hex without separators.
    pub serial: String,
}

/// A fresh key and a CSR for node `node` (CN `system:node:<node>`, O `system:nodes`).
/// Returns (CSR PEM, key PEM).
pub fn node_request(node: &str) -> Result<(String, String), PkiError> {
    client_request(&format!("{NODE_USER_PREFIX}{node}"), NODES_GROUP)
}

/// A fresh key and a CSR for CN `user`, O `group`. Returns (CSR PEM, key PEM).
pub fn client_request(user: &str, group: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(user, Some(group));
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// The subject of a PEM CSR whose signature checks out.
pub fn request_subject(csr_pem: &str) -> Result<Subject, PkiError> {
    let der = pem_der(csr_pem, "CERTIFICATE REQUEST")?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| PkiError::BadRequest(e.to_string()))?;
    csr.verify_signature()
        .map_err(|_| PkiError::BadRequest("the request's signature does not verify".into()))?;
    let subject = &csr.certification_request_info.subject;
    let text = |v: Result<&str, _>| v.map(str::to_string).ok();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|c| text(c.as_str()))
        .unwrap_or_default();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| text(o.as_str()))
        .collect();
    Ok(Subject {
        common_name,
        organizations,
    })
}

impl Pki {
    /// Issues a client certificate for `csr_pem` valid for `validity`: the request's subject
    /// and key, client-auth usage only, and a random serial (what revocation lists name).
    pub fn sign_client_request(
        &self,
        csr_pem: &str,
        validity: Duration,
    ) -> Result<Issued, PkiError> {
        let mut request = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let params = &mut request.params;
        params.subject_alt_names.clear();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial: [u8; 16] = rand::random();
        // A positive INTEGER: the top bit clear.
        let serial = [&[serial[0] & 0x7f], &serial[1..]].concat();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        set_validity(params, validity)?;
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params(CA_VALIDITY)?, &ca_key);
        let cert = request.signed_by(&issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            serial: hex(&serial),
        })
    }
}

/// The serial number of a DER certificate, lower-case hex without leading zero bytes.
pub fn serial_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    Some(hex(&raw[start..]))
}

/// The serial number of the first certificate in `pem`.
pub fn serial_of_pem(pem: &str) -> Option<String> {
    serial_of(&pem_der(pem, "CERTIFICATE").ok()?)
}

fn hex(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].iter().map(|b| format!("{b:02x}")).collect()
}

fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>, PkiError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::BadRequest(format!("not PEM: {e}")))?;
    if parsed.label != label {
        return Err(PkiError::BadRequest(format!(
            "expected a PEM block of type {label}, found {}",
            parsed.label
        )));
    }
    Ok(parsed.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> Pki {
        Pki::generate("c", &["127.0.0.1".into()]).unwrap()
    }

    #[test]
    fn a_node_request_names_the_node_and_its_group() {
        let (csr, key) = node_request("lab-a").unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert_eq!(
            request_subject(&csr).unwrap(),
            Subject {
                common_name: "system:node:lab-a".into(),
                organizations: vec!["system:nodes".into()],
            }
        );
    }

    #[test]
    fn garbage_and_certificates_are_not_requests() {
        assert!(request_subject("nope").is_err());
        let err = request_subject(&pki().admin_cert_pem).unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");
    }

    #[test]
    fn a_signed_request_is_a_client_certificate_the_ca_verifies() {
        let pki = pki();
        let (csr, _) = node_request("lab-a").unwrap();
        let issued = pki
            .sign_client_request(&csr, Duration::from_secs(3600))
            .unwrap();
        crate::certs::tests::verify_client(&issued.cert_pem, &pki.ca_cert_pem).unwrap();
        assert_eq!(serial_of_pem(&issued.cert_pem), Some(issued.serial.clone()));
        let again = pki
            .sign_client_request(&csr, Duration::from_secs(3600))
            .unwrap();
        assert_ne!(again.serial, issued.serial, "serials are random");
        let der = pem_der(&issued.cert_pem, "CERTIFICATE").unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "O=system:nodes, CN=system:node:lab-a"
        );
        let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        // An hour, plus the hour certificates are backdated by.
        assert_eq!(life, 2 * 3600);
    }
}
