//! Authentication: a client certificate signed by the cluster CA (checked during the TLS
//! handshake; CN is the user, O the groups), a known bearer token, a service-account token
//! this server signed ([`crate::tokenrequest`]), or a bootstrap token ([`crate::join`]).
//! Anything else is anonymous, which may only read the health and version endpoints, as
//! kube-apiserver's public-info-viewer role allows.

use kinet_rbac::{UserInfo, AUTHENTICATED, UNAUTHENTICATED};

use crate::TokenUser;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Presented a client certificate the CA signed.
    Certificate(UserInfo),
    Token {
        user: String,
        groups: Vec<String>,
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

    /// The name and groups authorizers see; every authenticated user is in
    /// `system:authenticated`, anonymous requests are `system:anonymous`.
    pub fn info(&self) -> UserInfo {
        let (name, mut groups) = match self {
            User::Certificate(u) => (u.name.clone(), u.groups.clone()),
            User::Token { user, groups } => (user.clone(), groups.clone()),
            User::Bootstrap { name, groups } => (name.clone(), groups.clone()),
            User::ServiceAccount { .. } => (
                self.service_account_name().unwrap_or_default(),
                self.service_account_groups(),
            ),
            User::Anonymous => {
                return UserInfo::new("system:anonymous", &[UNAUTHENTICATED]);
            }
        };
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        UserInfo { name, groups }
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

/// The user of a verified client certificate: CN is the name, each O a group.
pub fn certificate_user(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(UserInfo { name, groups })
}

/// Resolves the request's identity from the connection and its `Authorization` header.
/// `service_account` is asked about bearer tokens that are not in `tokens`.
pub fn authenticate(
    client_cert: Option<&UserInfo>,
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
                groups: t.groups.clone(),
            }),
            // JWTs have three dot-separated parts; skip the signature check for anything else.
            None if token.split('.').count() == 3 => service_account(token),
            None => None,
        };
    }
    Some(match client_cert {
        Some(u) => User::Certificate(u.clone()),
        None => User::Anonymous,
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
        let node = UserInfo::new("system:node:n1", &["system:nodes"]);
        assert_eq!(
            authenticate(None, Some("Bearer abc"), &tokens(), no_sa),
            Some(User::Token {
                user: "admin".into(),
                groups: vec![],
            })
        );
        assert_eq!(
            authenticate(Some(&node), Some("Bearer nope"), &tokens(), no_sa),
            None
        );
        assert_eq!(authenticate(None, Some("Basic x"), &tokens(), no_sa), None);
        let by_cert = authenticate(Some(&node), None, &tokens(), no_sa).unwrap();
        assert_eq!(
            by_cert.info(),
            UserInfo::new("system:node:n1", &["system:nodes", "system:authenticated"])
        );
        assert_eq!(
            authenticate(None, None, &tokens(), no_sa),
            Some(User::Anonymous)
        );
        assert_eq!(
            User::Anonymous.info(),
            UserInfo::new("system:anonymous", &["system:unauthenticated"])
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
            authenticate(None, Some("Bearer a.b.c"), &tokens(), found),
            Some(sa.clone())
        );
        assert_eq!(
            authenticate(None, Some("Bearer a.b.d"), &tokens(), found),
            None
        );
        // Not JWT-shaped: never reaches the (costly) signature check.
        let never = |_: &str| -> Option<User> { panic!("checked a non-JWT") };
        assert_eq!(
            authenticate(None, Some("Bearer ab"), &tokens(), never),
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

#[cfg(test)]
mod certificate_tests {
    use super::*;

    #[test]
    fn certificate_subjects_name_user_and_group() {
        let pki = kinet_pki::Pki::generate("c", &["127.0.0.1".into()]).unwrap();
        let (pem, _) = pki
            .issue_client("system:node:n1", &["system:nodes"])
            .unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            certificate_user(&der),
            Some(UserInfo::new("system:node:n1", &["system:nodes"]))
        );
        assert_eq!(certificate_user(b"junk"), None);
    }
}
