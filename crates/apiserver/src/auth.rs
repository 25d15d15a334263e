//! Authentication: a client certificate signed by the cluster CA (checked during the TLS
//! handshake) or a known bearer token. Anything else is anonymous, which may only read the
//! health and version endpoints, as kube-apiserver's public-info-viewer role allows.

use crate::TokenUser;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Presented a client certificate the CA signed.
    Certificate,
    Token {
        user: String,
    },
    Anonymous,
}

impl User {
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, User::Anonymous)
    }
}

/// Paths open to anonymous clients.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    )
}

/// Resolves the request's identity from the connection and its `Authorization` header.
pub fn authenticate(
    has_client_cert: bool,
    authorization: Option<&str>,
    tokens: &[TokenUser],
) -> Option<User> {
    if let Some(header) = authorization {
        let token = header.strip_prefix("Bearer ")?.trim();
        // A presented but unknown token is a failure even with a certificate, as kube-apiserver does.
        return tokens
            .iter()
            .find(|t| t.token == token)
            .map(|t| User::Token {
                user: t.user.clone(),
            });
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

    #[test]
    fn tokens_and_certificates() {
        assert_eq!(
            authenticate(false, Some("Bearer abc"), &tokens()),
            Some(User::Token {
                user: "admin".into()
            })
        );
        assert_eq!(authenticate(true, Some("Bearer nope"), &tokens()), None);
        assert_eq!(authenticate(false, Some("Basic x"), &tokens()), None);
        assert_eq!(authenticate(true, None, &tokens()), Some(User::Certificate));
        assert_eq!(authenticate(false, None, &tokens()), Some(User::Anonymous));
        assert!(is_public("/readyz") && !is_public("/api"));
    }
}
