//! Authentication: a client certificate signed by the cluster CA (checked during the TLS
//! handshake), a known bearer token, or a service-account token this server signed
//! ([`crate::tokenrequest`]), or a bootstrap token ([`crate::join`]). Anything else is anonymous, which may only read the health and
//! version endpoints, as kube-apiserver's public-info-viewer role allows.

use crate::TokenUser;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Presented a client certificate the CA signed.
    Certificate,
    Token {
        user: String,
    },
    /// Presented a service-account token (TokenRequest) that is still valid.
    ServiceAccount {
        namespace: String,
        name: String,
    },
    /// Presented a bootstrap token (`system:bootstrap:<id>`, in `system:bootstrappers`).
    Bootstrap {
        name: String,
        groups: Vec<String>,
    },
    Anonymous,
}

impl User {
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, User::Anonymous)
    }

    /// The name and groups recorded as a request's author (a CSR's requestor). Certificate
    /// users are not named here yet: the subject is read once authorization needs it.
    pub fn identity(&self) -> (String, Vec<String>) {
        let authenticated = "system:authenticated".to_string();
        match self {
            User::Bootstrap { name, groups } => {
                let mut groups = groups.clone();
                groups.push(authenticated);
                (name.clone(), groups)
            }
            User::ServiceAccount { .. } => (
                self.service_account_name().unwrap_or_default(),
                self.service_account_groups(),
            ),
            User::Token { user } => (user.clone(), vec![authenticated]),
            User::Certificate => (String::new(), vec![authenticated]),
            User::Anonymous => (
                "system:anonymous".into(),
                vec!["system:unauthenticated".into()],
            ),
        }
    }

    /// The user name kube-apiserver reports for service accounts, `None` for other users.
    pub fn service_account_name(&self) -> Option<String> {
        match self {
            User::ServiceAccount { namespace, name } => {
                Some(format!("system:serviceaccount:{namespace}:{name}"))
            }
            _ => None,
        }
    }

    /// The groups a service account belongs to (empty for other users).
    pub fn service_account_groups(&self) -> Vec<String> {
        match self {
            User::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            _ => Vec::new(),
        }
    }
}

/// Paths open to anonymous clients.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/" | crate::join::CACERTS_PATH
    )
}

/// Resolves the request's identity from the connection and its `Authorization` header.
/// `service_account` is asked about bearer tokens that are not in `tokens`.
pub fn authenticate(
    has_client_cert: bool,
    authorization: Option<&str>,
    tokens: &[TokenUser],
    service_account: impl FnOnce(&str) -> Option<User>,
) -> Option<User> {
    if let Some(header) = authorization {
        let token = header.strip_prefix("Bearer ")?.trim();
        // A presented but unknown token is a failure even with a certificate, as kube-apiserver does.
        return match tokens.iter().find(|t| t.token == token) {
            Some(t) => Some(User::Token {
                user: t.user.clone(),
            }),
            // JWTs have three dot-separated parts; skip the signature check for anything else.
            None if token.split('.').count() == 3 => service_account(token),
            None => None,
        };
    }
    Some(if has_client_cert {
        User::Certificate
    } else {
        User::Anonymous
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<TokenUser> {
        vec![TokenUser {
            token: "abc".into(),
            user: "admin".into(),
            groups: vec![],
        }]
    }

    fn no_sa(_: &str) -> Option<User> {
        None
    }

    #[test]
    fn tokens_and_certificates() {
        assert_eq!(
            authenticate(false, Some("Bearer abc"), &tokens(), no_sa),
            Some(User::Token {
                user: "admin".into()
            })
        );
        assert_eq!(
            authenticate(true, Some("Bearer nope"), &tokens(), no_sa),
            None
        );
        assert_eq!(authenticate(false, Some("Basic x"), &tokens(), no_sa), None);
        assert_eq!(
            authenticate(true, None, &tokens(), no_sa),
            Some(User::Certificate)
        );
        assert_eq!(
            authenticate(false, None, &tokens(), no_sa),
            Some(User::Anonymous)
        );
        assert!(is_public("/readyz") && !is_public("/api"));
    }

    #[test]
    fn jwt_shaped_tokens_go_to_the_service_account_check() {
        let sa = User::ServiceAccount {
            namespace: "kube-system".into(),
            name: "coredns".into(),
        };
        let found = |t: &str| (t == "a.b.c").then(|| sa.clone());
        assert_eq!(
            authenticate(false, Some("Bearer a.b.c"), &tokens(), found),
            Some(sa.clone())
        );
        assert_eq!(
            authenticate(true, Some("Bearer a.b.d"), &tokens(), found),
            None
        );
        // Not JWT-shaped: never reaches the (costly) signature check.
        let never = |_: &str| -> Option<User> { panic!("checked a non-JWT") };
        assert_eq!(
            authenticate(false, Some("Bearer ab"), &tokens(), never),
            None
        );
        assert_eq!(
            sa.service_account_name().as_deref(),
            Some("system:serviceaccount:kube-system:coredns")
        );
        assert_eq!(
            sa.service_account_groups(),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated"
            ]
        );
    }
}
