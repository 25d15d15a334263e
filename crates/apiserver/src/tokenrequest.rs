//! Service-account tokens: the `serviceaccounts/{name}/token` subresource (TokenRequest,
//! authentication.k8s.io/v1) issues ES256 JWTs with the claims kube-apiserver puts, and
//! [`TokenIssuer::verify`] turns such a token back into the service account it names.
//!
//! The signing key is generated at first start and kept in the server's state folder, so
//! tokens stay valid across restarts.

use std::path::Path;

use crate::ServeError;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kinet_types::registry::{lookup, Resource};
use kinet_types::{ApiError, FieldError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{json_reply, Reply};
use crate::rest::{object_key, Api, Call};

/// The issuer (and default audience) kubeadm clusters use.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `expirationSeconds` when the request gives none.
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// The shortest lifetime kube-apiserver accepts.
pub const MIN_EXPIRATION: i64 = 600;
/// The longest lifetime accepted (kube-apiserver's validation bound, 2^32 s).
const MAX_EXPIRATION: i64 = 1 << 32;

/// The file the signing key lives in, inside the API server's state folder.
pub const KEY_FILE: &str = "sa.key";

/// Whether `sub` is a subresource this module serves for `resource` (the registry in
/// kinet-types does not list it).
pub fn serves(resource: &Resource, sub: &str) -> bool {
    resource.group.is_empty() && resource.plural == "serviceaccounts" && sub == "token"
}

/// A name and UID, as the `kubernetes.io` claim holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// The claims of a bound service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    pub nbf: i64,
    pub sub: String,
}

/// Signs and verifies service-account tokens with one ES256 key.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish()
    }
}

impl TokenIssuer {
    /// Reads the key at `path`, or generates a P-256 key there (mode 0600) when it is absent.
    pub fn load_or_generate(path: &Path) -> Result<TokenIssuer, ServeError> {
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = rcgen::KeyPair::generate()?.serialize_pem();
                write_private(path, &pem)?;
                pem
            }
            Err(e) => return Err(ServeError::io("reading", path)(e)),
        };
        TokenIssuer::from_pem(&pem)
    }

    /// A signer over a PKCS#8 PEM P-256 private key.
    pub fn from_pem(private_pem: &str) -> Result<TokenIssuer, ServeError> {
        let pair = rcgen::KeyPair::from_pem(private_pem)?;
        let public = pair.public_key_pem();
        // kube-apiserver's key ID is a hash of the public key; clients only compare it.
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&pair),
        );
        Ok(TokenIssuer {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes())?,
            decoding: DecodingKey::from_ec_pem(public.as_bytes())?,
            kid: base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                digest.as_ref(),
            ),
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks signature, issuer, audience (one of `audiences`), expiry and not-before.
    /// `None` when the token is not one of ours or is no longer valid.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(audiences);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

fn write_private(path: &Path, pem: &str) -> Result<(), ServeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ServeError::io("creating", dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(ServeError::io("creating", path))?;
    file.write_all(pem.as_bytes())
        .map_err(ServeError::io("writing", path))
}

/// The parts of a TokenRequest's spec the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// `(kind, name, uid)` of `boundObjectRef`.
    pub bound: Option<(String, String, Option<String>)>,
}

/// Reads and validates a TokenRequest body.
pub fn parse_spec(body: &Value, name: &str) -> Result<TokenSpec> {
    let spec = &body["spec"];
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let expiration_seconds = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    let mut errors = Vec::new();
    if expiration_seconds < MIN_EXPIRATION {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration_seconds,
            "may not specify a duration less than 10 minutes",
        ));
    } else if expiration_seconds > MAX_EXPIRATION {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration_seconds,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let bound = match spec["boundObjectRef"].as_object() {
        None => None,
        Some(r) => {
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
            let obj_name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kind, "Pod" | "Secret" | "Node") {
                errors.push(FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    kind,
                    &["Pod", "Secret", "Node"],
                ));
            }
            if obj_name.is_empty() {
                errors.push(FieldError::required("spec.boundObjectRef.name", ""));
            }
            let uid = r
                .get("uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_string);
            Some((kind.to_string(), obj_name.to_string(), uid))
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(token_resource(), name, &errors));
    }
    Ok(TokenSpec {
        audiences,
        expiration_seconds,
        bound,
    })
}

/// The TokenRequest kind, for error messages.
fn token_resource() -> &'static Resource {
    static TOKEN_REQUEST: Resource = Resource {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenRequest",
        plural: "tokenrequests",
        singular: "tokenrequest",
        short_names: &[],
        scope: kinet_types::registry::Scope::Namespaced,
        categories: &[],
        subresources: &[],
    };
    &TOKEN_REQUEST
}

fn core(plural: &str) -> &'static Resource {
    lookup("", "v1", plural).expect("core resources are served")
}

fn uid_of(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap_or_default().into()
}

impl Api {
    /// `POST .../serviceaccounts/{name}/token`.
    pub async fn create_token(&self, call: &mut Call) -> Result<Reply> {
        let ns = call.namespace().unwrap_or("default").to_string();
        let name = call.name().to_string();
        let body = call.body().await?;
        let media = call.content_type.split(';').next().unwrap_or("").trim();
        let request: Value = if media == "application/vnd.kubernetes.protobuf" {
            crate::tokenrequest_pb::decode(&body)?
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as JSON: {e}"
                ))
            })?
        };
        let spec = parse_spec(&request, &name)?;
        // The account and the bound object may have been made through another API server.
        self.store.sync().await?;
        let sa = self
            .store
            .get(&call.key())
            .ok_or_else(|| ApiError::not_found(core("serviceaccounts"), &name))?;
        let mut kubernetes = KubernetesClaim {
            namespace: ns.clone(),
            serviceaccount: Ref {
                name: name.clone(),
                uid: uid_of(&sa.value),
            },
            pod: None,
            node: None,
        };
        if let Some((kind, obj_name, want_uid)) = &spec.bound {
            let (plural, obj_ns) = match kind.as_str() {
                "Pod" => ("pods", Some(ns.as_str())),
                "Secret" => ("secrets", Some(ns.as_str())),
                _ => ("nodes", None),
            };
            let obj = self
                .store
                .get(&object_key(core(plural), obj_ns, obj_name))
                .ok_or_else(|| ApiError::not_found(core(plural), obj_name))?;
            let uid = uid_of(&obj.value);
            if want_uid.as_ref().is_some_and(|w| *w != uid) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                        want_uid.as_deref().unwrap_or_default()
                    ),
                ));
            }
            let bound = Ref {
                name: obj_name.clone(),
                uid,
            };
            match kind.as_str() {
                "Pod" => {
                    // kube-apiserver also names the pod's node, so a token dies with it.
                    kubernetes.node = obj.value["spec"]["nodeName"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .and_then(|node| {
                            let n = self.store.get(&object_key(core("nodes"), None, node))?;
                            Some(Ref {
                                name: node.to_string(),
                                uid: uid_of(&n.value),
                            })
                        });
                    kubernetes.pod = Some(bound);
                }
                "Node" => kubernetes.node = Some(bound),
                _ => {}
            }
        }
        let now = chrono::Utc::now().timestamp();
        let exp = now + spec.expiration_seconds;
        let claims = Claims {
            aud: spec.audiences.clone(),
            exp,
            iat: now,
            iss: ISSUER.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes,
            nbf: now,
            sub: format!("system:serviceaccount:{ns}:{name}"),
        };
        let token = self
            .sa_tokens
            .sign(&claims)
            .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
        let expires = chrono::DateTime::from_timestamp(exp, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut out_spec = request["spec"].clone();
        if !out_spec.is_object() {
            out_spec = json!({});
        }
        out_spec["audiences"] = json!(spec.audiences);
        out_spec["expirationSeconds"] = json!(spec.expiration_seconds);
        Ok(json_reply(
            201,
            &json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
                "spec": out_spec,
                "status": {"token": token, "expirationTimestamp": expires},
            }),
        ))
    }

    /// The service account a bearer token names, if it is one of ours, still valid, and
    /// the account (and the pod or node it is bound to) still exist with the same UIDs.
    pub async fn service_account_user(&self, token: &str) -> Option<crate::auth::User> {
        let claims = self.sa_tokens.verify(token, &[ISSUER])?;
        if let Some(user) = self.claimed_user(&claims) {
            return Some(user);
        }
        // Signed by this cluster, but another API server may have made the account or pod just
        // now: look again once the cache has caught up (kube-apiserver falls back from its
        // informers to a live read the same way).
        self.store.sync().await.ok()?;
        self.claimed_user(&claims)
    }

    /// The account `claims` name, if it (and the pod it is bound to) is in the cache with the
    /// same UIDs.
    fn claimed_user(&self, claims: &Claims) -> Option<crate::auth::User> {
        let k = &claims.kubernetes;
        let alive = |plural: &str, ns: Option<&str>, r: &Ref| {
            self.store
                .get(&object_key(core(plural), ns, &r.name))
                .is_some_and(|o| uid_of(&o.value) == r.uid)
        };
        let ns = Some(k.namespace.as_str());
        if !alive("serviceaccounts", ns, &k.serviceaccount) {
            return None;
        }
        if k.pod.as_ref().is_some_and(|p| !alive("pods", ns, p)) {
            return None;
        }
        Some(crate::auth::User::ServiceAccount {
            namespace: k.namespace.clone(),
            name: k.serviceaccount.name.clone(),
        })
    }
}

#[cfg(test)]
#[path = "tokenrequest_tests.rs"]
mod tests;
