//! Certificate generation: the CA, the API server's serving certificate, client certificates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::{Pki, PkiError, ADMIN_GROUP, ADMIN_USER, KUBELET_CLIENT_USER};

const DAY: u64 = 24 * 60 * 60;
pub(crate) const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * DAY);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// Certificates start an hour in the past so small clock differences don't reject them.
const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// The CA's subject. It is fixed so that the issuer can be rebuilt from the key alone
/// after a load (rcgen needs the issuer's name, not its certificate).
const CA_COMMON_NAME: &str = "kinet-ca";

impl Pki {
    /// A fresh CA, a serving certificate for `server_sans` (IP addresses and DNS names)
    /// and the admin client certificate (CN `kubernetes-admin`, O `system:masters`).
    pub fn generate(cluster: &str, server_sans: &[String]) -> Result<Pki, PkiError> {
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params(CA_VALIDITY)?.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params(CA_VALIDITY)?, &ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = leaf_params(server_sans.to_vec())?;
        server.distinguished_name = dn("kube-apiserver", Some(cluster));
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let (admin_cert_pem, admin_key_pem) = client_cert(&issuer, ADMIN_USER, &[ADMIN_GROUP])?;
        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem: ca_key.serialize_pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            admin_cert_pem,
            admin_key_pem,
        })
    }

    /// A client certificate signed by the CA: CN = `user`, O = the group.
    /// Returns (certificate PEM, key PEM). rcgen writes each subject attribute once,
    /// so at most one group is supported.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params(CA_VALIDITY)?, &ca_key);
        client_cert(&issuer, user, groups)
    }
}

impl Pki {
    /// The API server's client certificate for node agents (CN [`KUBELET_CLIENT_USER`], no
    /// group), issued fresh in memory: agents check the CA and the name, not the serial.
    /// Returns (certificate PEM, key PEM).
    pub fn issue_kubelet_client(&self) -> Result<(String, String), PkiError> {
        self.issue_client(KUBELET_CLIENT_USER, &[])
    }
}

fn client_cert(
    issuer: &Issuer<'_, &KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), PkiError> {
    if groups.len() > 1 {
        return Err(PkiError::TooManyGroups(groups.len()));
    }
    let key = KeyPair::generate()?;
    let mut params = leaf_params(Vec::new())?;
    params.distinguished_name = dn(user, groups.first().copied());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub(crate) fn ca_params(validity: Duration) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(CA_COMMON_NAME, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, validity)?;
    Ok(params)
}

fn leaf_params(sans: Vec<String>) -> Result<CertificateParams, PkiError> {
    let mut params = match CertificateParams::new(sans.clone()) {
        Ok(p) => p,
        Err(rcgen::Error::InvalidAsn1String(_)) => {
            // Name the offending entry rather than rcgen's generic message.
            let bad = sans
                .into_iter()
                .find(|s| CertificateParams::new(vec![s.clone()]).is_err())
                .unwrap_or_default();
            return Err(PkiError::InvalidSan(bad));
        }
        Err(e) => return Err(e.into()),
    };
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY)?;
    Ok(params)
}

pub(crate) fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

pub(crate) fn set_validity(
    params: &mut CertificateParams,
    validity: Duration,
) -> Result<(), PkiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = now.saturating_sub(BACKDATE);
    params.not_before = unix_time(start)?;
    params.not_after = unix_time(now + validity)?;
    Ok(())
}

fn unix_time(since_epoch: Duration) -> Result<OffsetDateTime, PkiError> {
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| PkiError::Rcgen(rcgen::Error::Time))
}

#[cfg(test)]
pub(crate) mod tests;
