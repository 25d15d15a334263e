//! What nodes joining from other hosts need of the API server, in one place:
//!
//! - `/cacerts` (k3s's name): the CA bundle, unauthenticated, so a joiner can compare its hash
//!   with the one its token pins before it sends the token.
//! - Bootstrap token authentication (kube-apiserver's `--enable-bootstrap-token-auth`): a bearer
//!   `<id>.<secret>` matching the kube-system Secret `bootstrap-token-<id>`, until it expires.
//! - What a bootstrap user may do: only create and read CertificateSigningRequests, the
//!   `system:node-bootstrapper` role. (Until RBAC lands this is the one authorization rule.)
//! - The CSR strategy: the requestor's identity is stamped by the server, never the client.
//! - Revoked node certificates: the serials `kinet node revoke` lists in the kube-system
//!   ConfigMap [`REVOKED_CONFIGMAP`], refused on every request.

use chrono::Utc;
use kinet_pki::token::{self, StoredToken};
use kinet_store::Store;
use kinet_types::registry::Resource;
use kinet_types::{ApiError, FieldError};
use serde_json::{json, Value};

use crate::auth::User;

/// The path that serves the CA bundle to anyone.
pub const CACERTS_PATH: &str = "/cacerts";

/// The kube-system ConfigMap whose keys are revoked certificate serials (lower-case hex).
pub const REVOKED_CONFIGMAP: &str = "kinet-revoked-certificates";

/// The signer of node client certificates (kubelet TLS bootstrap).
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The user a `<id>.<secret>` bearer token authenticates as: `Ok(None)` when the token is not
/// shaped like a bootstrap token (other authenticators may know it), `Err` when it is one
/// but is refused. An expired token is named in the error, as the caller proved it holds the
/// secret; an unknown one gets kube-apiserver's plain `Unauthorized`.
pub fn authenticate(store: &Store, bearer: &str) -> Result<Option<User>, ApiError> {
    let Some((id, secret)) = token::split_bootstrap(bearer) else {
        return Ok(None);
    };
    let key = format!(
        "core/secrets/{}/{}{id}",
        token::NAMESPACE,
        token::SECRET_PREFIX
    );
    let stored = store
        .get(&key)
        .and_then(|s| StoredToken::from_secret(&s.value))
        .ok_or_else(ApiError::unauthorized)?;
    match stored.authenticate(secret, Utc::now()) {
        Ok(user) => Ok(Some(User::Bootstrap {
            name: user.name,
            groups: user.groups,
        })),
        Err(token::Refusal::Mismatch) => Err(ApiError::unauthorized()),
        Err(refusal) => Err(ApiError::new(
            401,
            "Unauthorized",
            format!("Unauthorized: {refusal}"),
        )),
    }
}

/// Whether the client certificate with `serial` was revoked.
pub fn revoked(store: &Store, serial: &str) -> bool {
    let key = format!("core/configmaps/kube-system/{REVOKED_CONFIGMAP}");
    store
        .get(&key)
        .is_some_and(|cm| cm.value["data"].get(serial).is_some())
}

/// kube-apiserver's CSR strategy on create: the requestor's identity comes from the
/// authenticated user, whatever the client wrote, and the status starts empty.
pub fn stamp_requestor(csr: &mut Value, user: &kinet_rbac::UserInfo) {
    let (name, groups) = (&user.name, &user.groups);
    let spec = &mut csr["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["username"] = json!(name);
    spec["groups"] = json!(groups);
    for field in ["uid", "extra"] {
        spec.as_object_mut().map(|s| s.remove(field));
    }
    csr["status"] = json!({});
}

/// What kube-apiserver's CSR validation checks that the typed decoding does not: the
/// request is a PEM CSR whose signature verifies, and a signer is named.
pub fn validate(resource: &Resource, csr: &Value) -> Vec<FieldError> {
    if (resource.group, resource.kind) != ("certificates.k8s.io", "CertificateSigningRequest") {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let request = csr["spec"]["request"].as_str().unwrap_or_default();
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(request)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    match pem {
        _ if request.is_empty() => errs.push(FieldError::required("spec.request", "")),
        Some(pem) if kinet_pki::csr::request_subject(&pem).is_ok() => {}
        _ => errs.push(FieldError::invalid(
            "spec.request",
            json!([]),
            "certificate request must be a valid PEM-encoded CERTIFICATE REQUEST",
        )),
    }
    match csr["spec"]["signerName"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.signerName", "")),
        Some(s) if s.split('/').count() != 2 => errs.push(FieldError::invalid(
            "spec.signerName",
            s,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )),
        Some(_) => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;

    fn csrs() -> &'static Resource {
        lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap()
    }

    #[test]
    fn the_requestor_is_the_authenticated_user() {
        let user = User::Bootstrap {
            name: "system:bootstrap:abcdef".into(),
            groups: vec!["system:bootstrappers".into()],
        };
        let mut csr = json!({"spec": {"username": "system:admin", "groups": ["system:masters"],
            "uid": "x", "request": "r"}, "status": {"certificate": "forged"}});
        stamp_requestor(&mut csr, &user.info());
        assert_eq!(
            csr,
            json!({"spec": {"username": "system:bootstrap:abcdef",
                "groups": ["system:bootstrappers", "system:authenticated"], "request": "r"},
                "status": {}})
        );
    }

    #[test]
    fn requests_must_be_signed_pem_with_a_signer() {
        use base64::Engine;
        let (pem, _) = kinet_pki::csr::node_request("n").unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let good = json!({"spec": {"request": b64(&pem), "signerName": KUBELET_CLIENT_SIGNER}});
        assert!(validate(csrs(), &good).is_empty());
        let bad = json!({"spec": {"request": b64("junk"), "signerName": "nope"}});
        let fields: Vec<String> = validate(csrs(), &bad)
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(fields, ["spec.request", "spec.signerName"]);
        assert_eq!(validate(csrs(), &json!({}))[0].field, "spec.request");
    }
}
