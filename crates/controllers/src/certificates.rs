//! Node TLS bootstrap, as kube-controller-manager's `csrapproving` and `csrsigning`
//! controllers do it for `kubernetes.io/kube-apiserver-client-kubelet`:
//!
//! - approve a node client request when a SubjectAccessReview says its requestor may create
//!   `certificatesigningrequests/selfnodeclient` (the node itself renewing) or `…/nodeclient`
//!   (a new node; the bootstrap policy grants it to `system:bootstrappers`);
//! - sign approved requests with the cluster CA (the signer runs where the CA key is, beside
//!   the API server, as kube-controller-manager's `--cluster-signing-key-file`).
//!
//! Requests for other signers are left alone, for other approvers and signers.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kinet_pki::csr::{NODES_GROUP, NODE_USER_PREFIX};
use kinet_pki::Pki;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::runtime::run_controller;

/// The signer of node client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// kube-controller-manager's `--cluster-signing-duration` default.
const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The shortest `spec.expirationSeconds` honoured (kube-apiserver's minimum).
const MIN_VALIDITY: Duration = Duration::from_secs(600);

/// A SubjectAccessReview the approver asks, and its approval message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub subresource: &'static str,
    pub message: &'static str,
}

const SELF_NODE_CLIENT: Check = Check {
    subresource: "selfnodeclient",
    message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
};
const NODE_CLIENT: Check = Check {
    subresource: "nodeclient",
    message: "Auto approving kubelet client certificate after SubjectAccessReview.",
};

/// What a request needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Approve it if its requestor may create one of these subresources of
    /// certificatesigningrequests, asked in order, with the message of the first allowed.
    Review(&'static [Check]),
    /// Sign it, valid this long.
    Sign(Duration),
    /// Nothing: another signer's, not ours to approve, denied, failed or issued.
    Nothing,
}

/// The decision for one request, from its spec and status alone.
pub fn next(csr: &CertificateSigningRequest) -> Next {
    let spec = &csr.spec;
    if spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Next::Nothing;
    }
    let status = csr.status.clone().unwrap_or_default();
    let has = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if has("Denied") || has("Failed") || status.certificate.is_some() {
        return Next::Nothing;
    }
    if has("Approved") {
        let validity = spec
            .expiration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64).max(MIN_VALIDITY))
            .unwrap_or(DEFAULT_VALIDITY)
            .min(DEFAULT_VALIDITY);
        return Next::Sign(validity);
    }
    let Some(node) = node_of_request(csr) else {
        return Next::Nothing;
    };
    // Upstream's recognizers: a request by the node it names is also a node client request.
    if spec.username.as_deref() == Some(&format!("{NODE_USER_PREFIX}{node}")) {
        Next::Review(&[SELF_NODE_CLIENT, NODE_CLIENT])
    } else {
        Next::Review(&[NODE_CLIENT])
    }
}

/// Whether the requestor of `csr` may create `subresource` of certificatesigningrequests, by
/// a SubjectAccessReview with the requestor's identity, as upstream's approver asks it.
async fn may(
    client: &Client,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool, Error> {
    let spec = &csr.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The node a request is for, if it is a well-formed node client request: subject
/// `system:node:<name>` in exactly `system:nodes`, and usages within digital signature, key
/// encipherment and client auth, client auth included (upstream's `isNodeClientCert`).
pub fn node_of_request(csr: &CertificateSigningRequest) -> Option<String> {
    let pem = String::from_utf8(csr.spec.request.0.clone()).ok()?;
    let subject = kinet_pki::csr::request_subject(&pem).ok()?;
    let node = subject.common_name.strip_prefix(NODE_USER_PREFIX)?;
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    let allowed = ["digital signature", "key encipherment", "client auth"];
    let ok = !node.is_empty()
        && subject.organizations == [NODES_GROUP]
        && usages.iter().any(|u| u == "client auth")
        && usages.iter().all(|u| allowed.contains(&u.as_str()));
    ok.then(|| node.to_string())
}

struct Ctx {
    client: Client,
    ca: Pki,
}

/// Runs the approver and signer until the watch ends.
pub async fn run(client: Client, ca: Pki) -> Result<(), crate::LoopError> {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let controller = Controller::new(csrs, watcher::Config::default());
    let ctx = Arc::new(Ctx { client, ca });
    run_controller(
        "certificatesigningrequests",
        controller,
        reconcile,
        ctx,
        Duration::from_secs(1),
    )
    .await;
    Ok(())
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let name = csr.name_any();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match next(&csr) {
        Next::Nothing => {}
        Next::Review(checks) => {
            let mut allowed = None;
            for check in checks {
                if may(&ctx.client, &csr, check.subresource).await? {
                    allowed = Some(check.message);
                    break;
                }
            }
            // Not allowed: left pending for another approver or a human, as upstream leaves it.
            let Some(message) = allowed else {
                return Ok(Action::await_change());
            };
            let conditions = json!({"status": {"conditions": [{
                "type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": message, "lastUpdateTime": now, "lastTransitionTime": now,
            }]}});
            api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(conditions))
                .await?;
        }
        Next::Sign(validity) => {
            let pem = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
            let status = match ctx.ca.sign_client_request(&pem, validity) {
                Ok(issued) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(issued.cert_pem);
                    json!({"status": {"certificate": b64}})
                }
                // An approved request the CA cannot sign fails for good, as upstream marks it.
                Err(e) => json!({"status": {"conditions": csr.status.as_ref()
                    .and_then(|s| s.conditions.clone()).into_iter().flatten()
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .chain([json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                        "message": e.to_string(), "lastUpdateTime": now, "lastTransitionTime": now})])
                    .collect::<Vec<_>>()}}),
            };
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
    }
    Ok(Action::await_change())
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestSpec,
        CertificateSigningRequestStatus,
    };
    use k8s_openapi::ByteString;

    fn request(node: &str, username: &str, groups: &[&str]) -> CertificateSigningRequest {
        let (pem, _) = kinet_pki::csr::node_request(node).unwrap();
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: KUBELET_CLIENT_SIGNER.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                username: Some(username.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn with_condition(mut csr: CertificateSigningRequest, t: &str) -> CertificateSigningRequest {
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: t.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        csr
    }

    #[test]
    fn a_node_asks_for_selfnodeclient_first_anyone_else_for_nodeclient() {
        let new = request(
            "lab-a",
            "system:bootstrap:abcdef",
            &["system:bootstrappers"],
        );
        assert_eq!(next(&new), Next::Review(&[NODE_CLIENT]));
        let renewal = request("lab-a", "system:node:lab-a", &["system:nodes"]);
        assert_eq!(
            next(&renewal),
            Next::Review(&[SELF_NODE_CLIENT, NODE_CLIENT])
        );
        // Another node, or an ordinary user: whether they may is RBAC's answer.
        let other = request("lab-a", "system:node:lab-b", &["system:nodes"]);
        assert_eq!(next(&other), Next::Review(&[NODE_CLIENT]));
    }

    #[test]
    fn only_node_client_requests_are_approved() {
        let mut server_auth = request("n", "system:bootstrap:abcdef", &["system:bootstrappers"]);
        server_auth.spec.usages = Some(vec!["server auth".into(), "client auth".into()]);
        assert_eq!(next(&server_auth), Next::Nothing);
        let mut other_signer = request("n", "system:bootstrap:abcdef", &["system:bootstrappers"]);
        other_signer.spec.signer_name = "example.com/x".into();
        assert_eq!(next(&other_signer), Next::Nothing);
        let mut not_a_node = request("n", "system:bootstrap:abcdef", &["system:bootstrappers"]);
        let (alice, _) = kinet_pki::csr::client_request("alice", NODES_GROUP).unwrap();
        not_a_node.spec.request = ByteString(alice.into_bytes());
        assert_eq!(next(&not_a_node), Next::Nothing);
        let mut two_groups = request("n", "system:bootstrap:abcdef", &["system:bootstrappers"]);
        let (masters, _) =
            kinet_pki::csr::client_request("system:node:n", "system:masters").unwrap();
        two_groups.spec.request = ByteString(masters.into_bytes());
        assert_eq!(next(&two_groups), Next::Nothing);
    }

    #[test]
    fn approved_requests_are_signed_once_and_denied_ones_never() {
        let new = request("n", "system:bootstrap:abcdef", &["system:bootstrappers"]);
        let approved = with_condition(new.clone(), "Approved");
        assert_eq!(next(&approved), Next::Sign(DEFAULT_VALIDITY));
        let mut short = approved.clone();
        short.spec.expiration_seconds = Some(60);
        assert_eq!(next(&short), Next::Sign(MIN_VALIDITY));
        let mut issued = approved;
        issued.status.as_mut().unwrap().certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(next(&issued), Next::Nothing);
        assert_eq!(next(&with_condition(new, "Denied")), Next::Nothing);
    }
}
