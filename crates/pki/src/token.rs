//! Join tokens: kubeadm's bootstrap tokens (`<id>.<secret>`, stored as kube-system Secrets of
//! type `bootstrap.kubernetes.io/token`) wrapped in k3s's secure form `K10<sha256 of the CA
//! PEM>::<id>.<secret>`, so a joining host can pin the cluster CA before it sends the secret.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};

/// The Secret type kubeadm's bootstrap tokens have.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// kubeadm's Secret name prefix: the Secret of token `abcdef.…` is `bootstrap-token-abcdef`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group every bootstrap token user is in (bound to `system:node-bootstrapper`).
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The extra group kinet's tokens carry, as k3s's `…:k3s:default-node-token`.
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:kinet:default-node-token";
/// The user a bootstrap token authenticates as is this prefix and the token id.
pub const USER_PREFIX: &str = "system:bootstrap:";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A join token: the CA's hash and the bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the CA certificate's PEM (k3s hashes the `/cacerts` body).
    pub ca_hash: String,
    pub id: String,
    pub secret: String,
}

// The secret stays out of logs.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "K10{}::{}.{}", self.ca_hash, self.id, self.secret)
    }
}

/// Why a token string is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a join token looks like K10<sha256 of the CA>::<id>.<secret>; this one does not start with K10 and carry a CA hash (the short form cannot pin the CA)")]
    NoCaHash,
    #[error("the CA hash in the join token is not 64 hexadecimal digits")]
    BadCaHash,
    #[error("the bootstrap token in the join token must be [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    BadBootstrapToken,
}

impl JoinToken {
    /// A fresh random bootstrap token for the cluster whose CA is `ca_pem`.
    pub fn generate(ca_pem: &str) -> JoinToken {
        JoinToken {
            ca_hash: ca_hash(ca_pem),
            id: random_string(ID_LEN),
            secret: random_string(SECRET_LEN),
        }
    }

    /// Parses `K10<hash>::<id>.<secret>`.
    pub fn parse(s: &str) -> Result<JoinToken, TokenError> {
        let rest = s.trim().strip_prefix("K10").ok_or(TokenError::NoCaHash)?;
        let (hash, token) = rest.split_once("::").ok_or(TokenError::NoCaHash)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::BadCaHash);
        }
        let (id, secret) = split_bootstrap(token).ok_or(TokenError::BadBootstrapToken)?;
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// The bearer token sent to the API server.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Whether `ca_pem` is the CA this token pins.
    pub fn pins(&self, ca_pem: &str) -> bool {
        ca_hash(ca_pem) == self.ca_hash
    }
}

/// Hex SHA-256 of a CA bundle's PEM text.
pub fn ca_hash(ca_pem: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a bearer token of kubeadm's shape `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn split_bootstrap(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b));
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some((id, secret))
}

fn random_string(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The kube-system Secret that makes `token` valid, as `kubeadm token create` writes it.
pub fn secret_object(
    token: &JoinToken,
    expires: Option<DateTime<Utc>>,
    description: Option<&str>,
) -> Value {
    let mut data = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.into(), Value::String(STANDARD.encode(v)));
    };
    put("token-id", &token.id);
    put("token-secret", &token.secret);
    put("usage-bootstrap-authentication", "true");
    put("auth-extra-groups", NODE_TOKEN_GROUP);
    if let Some(at) = expires {
        put(
            "expiration",
            &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if let Some(d) = description {
        put("description", d);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{SECRET_PREFIX}{}", token.id), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    })
}

/// A bootstrap token Secret, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    secret: String,
    pub expires: Option<DateTime<Utc>>,
    pub description: String,
    pub usages: Vec<String>,
    pub extra_groups: Vec<String>,
}

impl StoredToken {
    /// Reads a Secret of type [`SECRET_TYPE`]; `None` for anything else or a malformed one.
    pub fn from_secret(secret: &Value) -> Option<StoredToken> {
        if secret["type"] != SECRET_TYPE {
            return None;
        }
        let field = |k: &str| -> Option<String> {
            let b64 = secret["data"][k].as_str()?;
            String::from_utf8(STANDARD.decode(b64).ok()?).ok()
        };
        let id = field("token-id")?;
        // kubeadm's bootstrap authenticator ignores Secrets whose name does not match the id.
        if secret["metadata"]["name"].as_str() != Some(&format!("{SECRET_PREFIX}{id}")) {
            return None;
        }
        let expires = match field("expiration") {
            Some(s) => Some(DateTime::parse_from_rfc3339(&s).ok()?.with_timezone(&Utc)),
            None => None,
        };
        let usages = secret["data"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("usage-bootstrap-"))
            .filter(|u| field(&format!("usage-bootstrap-{u}")).as_deref() == Some("true"))
            .map(str::to_string)
            .collect();
        let extra_groups = field("auth-extra-groups")
            .map(|g| g.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        Some(StoredToken {
            id,
            secret: field("token-secret")?,
            expires,
            description: field("description").unwrap_or_default(),
            usages,
            extra_groups,
        })
    }

    /// The token's secret half (`kinet token list` prints whole tokens, as `kubeadm token list`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// Who a bearer token with `presented` secret authenticates as: kube-apiserver's
    /// bootstrap token authenticator.
    pub fn authenticate(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<BootstrapUser, Refusal> {
        // Compare in constant time: the id is public, the secret is not.
        if !equal_in_constant_time(self.secret.as_bytes(), presented.as_bytes()) {
            return Err(Refusal::Mismatch);
        }
        if let Some(at) = self.expires.filter(|_| self.expired(now)) {
            return Err(Refusal::Expired {
                id: self.id.clone(),
                at,
            });
        }
        if !self.usages.iter().any(|u| u == "authentication") {
            return Err(Refusal::NotForAuthentication);
        }
        let mut groups = vec![BOOTSTRAPPERS.to_string()];
        groups.extend(
            self.extra_groups
                .iter()
                .filter(|g| g.starts_with(BOOTSTRAPPERS))
                .cloned(),
        );
        Ok(BootstrapUser {
            name: format!("{USER_PREFIX}{}", self.id),
            groups,
        })
    }
}

/// Compares without stopping at the first difference (the lengths are public: 16).
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A user authenticated by a bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    pub name: String,
    pub groups: Vec<String>,
}

/// Why a bootstrap token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown bootstrap token")]
    Mismatch,
    #[error("bootstrap token {id} expired at {at}")]
    Expired { id: String, at: DateTime<Utc> },
    #[error("the bootstrap token is not for authentication")]
    NotForAuthentication,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_generated_token_round_trips_and_pins_its_ca() {
        let t = JoinToken::generate(CA);
        let s = t.to_string();
        assert!(s.starts_with("K10") && s.contains("::"), "{s}");
        assert_eq!(JoinToken::parse(&s).unwrap(), t);
        assert!(t.pins(CA));
        assert!(!t.pins("another CA"));
        assert!(split_bootstrap(&t.bearer()).is_some());
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn the_hash_is_sha256_of_the_pem() {
        // sha256("abc"), FIPS 180-2's example.
        assert_eq!(
            ca_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let hash = "a".repeat(64);
        assert_eq!(
            JoinToken::parse("abcdef.0123456789abcdef"),
            Err(TokenError::NoCaHash)
        );
        assert_eq!(
            JoinToken::parse("K10abc::abcdef.0123456789abcdef"),
            Err(TokenError::BadCaHash)
        );
        for bad in [
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef0123456789abcdef",
        ] {
            assert_eq!(
                JoinToken::parse(&format!("K10{hash}::{bad}")),
                Err(TokenError::BadBootstrapToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_authenticates_until_it_expires() {
        let t = JoinToken::generate(CA);
        let obj = secret_object(&t, Some(at("2030-01-01T00:00:00Z")), Some("lab"));
        assert_eq!(obj["metadata"]["name"], format!("bootstrap-token-{}", t.id));
        let stored = StoredToken::from_secret(&obj).unwrap();
        assert_eq!(stored.description, "lab");
        let user = stored
            .authenticate(&t.secret, at("2029-12-31T23:59:59Z"))
            .unwrap();
        assert_eq!(user.name, format!("system:bootstrap:{}", t.id));
        assert_eq!(user.groups, [BOOTSTRAPPERS, NODE_TOKEN_GROUP]);
        assert_eq!(
            stored.authenticate("0123456789abcdef", at("2029-01-01T00:00:00Z")),
            Err(Refusal::Mismatch)
        );
        let refused = stored
            .authenticate(&t.secret, at("2030-01-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "bootstrap token {} expired at 2030-01-01 00:00:00 UTC",
                t.id
            )
        );
        assert!(stored.expired(at("2030-01-01T00:00:01Z")));
    }

    #[test]
    fn secrets_that_are_not_usable_tokens_are_refused() {
        let t = JoinToken::generate(CA);
        let mut obj = secret_object(&t, None, None);
        let stored = StoredToken::from_secret(&obj).unwrap();
        assert!(!stored.expired(Utc::now()));
        obj["data"]["usage-bootstrap-authentication"] = json!(STANDARD.encode("false"));
        assert_eq!(
            StoredToken::from_secret(&obj)
                .unwrap()
                .authenticate(&t.secret, Utc::now()),
            Err(Refusal::NotForAuthentication)
        );
        let mut renamed = secret_object(&t, None, None);
        renamed["metadata"]["name"] = json!("bootstrap-token-zzzzzz");
        assert_eq!(StoredToken::from_secret(&renamed), None);
        let mut opaque = secret_object(&t, None, None);
        opaque["type"] = json!("Opaque");
        assert_eq!(StoredToken::from_secret(&opaque), None);
    }

    #[test]
    fn extra_groups_outside_the_bootstrappers_are_dropped() {
        let t = JoinToken::generate(CA);
        let mut obj = secret_object(&t, None, None);
        obj["data"]["auth-extra-groups"] =
            json!(STANDARD.encode("system:masters, system:bootstrappers:x"));
        let user = StoredToken::from_secret(&obj)
            .unwrap()
            .authenticate(&t.secret, Utc::now())
            .unwrap();
        assert_eq!(user.groups, [BOOTSTRAPPERS, "system:bootstrappers:x"]);
    }
}
