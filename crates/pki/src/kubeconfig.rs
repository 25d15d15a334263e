//! kubeconfig files, named like kind's: cluster, user and context are all `kinet-<name>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

/// How the kubeconfig's user authenticates.
#[derive(Clone)]
pub enum Credentials {
    ClientCert { cert_pem: String, key_pem: String },
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientCert { .. } => f.write_str("ClientCert(..)"),
            Credentials::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// The kubeconfig name of a cluster's context (also its cluster and user entries).
pub fn context_name(cluster: &str) -> String {
    format!("kinet-{cluster}")
}

/// A kubeconfig YAML with the CA embedded and the user's credentials inline.
pub fn kubeconfig(cluster: &str, server_url: &str, ca_pem: &str, creds: &Credentials) -> String {
    let name = context_name(cluster);
    let user = match creds {
        Credentials::ClientCert { cert_pem, key_pem } => json!({
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }),
        Credentials::Token(token) => json!({ "token": token }),
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{
            "name": name,
            "cluster": {
                "certificate-authority-data": STANDARD.encode(ca_pem),
                "server": server_url,
            },
        }],
        "users": [{ "name": name, "user": user }],
        "contexts": [{
            "name": name,
            "context": { "cluster": name, "user": name },
        }],
        "current-context": name,
    });
    // A tree of strings, maps and lists always serializes.
    serde_yaml_ng::to_string(&doc).unwrap_or_else(|_| doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    fn decode(v: &Value) -> String {
        String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn client_cert_kubeconfig_has_every_field() {
        let creds = Credentials::ClientCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = kubeconfig("dev", "https://127.0.0.1:6443", "CA", &creds);
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["kind"], "Config");
        assert_eq!(doc["current-context"], "kinet-dev");
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"], "kinet-dev");
        assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(
            decode(&cluster["cluster"]["certificate-authority-data"]),
            "CA"
        );
        let user = &doc["users"][0];
        assert_eq!(user["name"], "kinet-dev");
        assert_eq!(decode(&user["user"]["client-certificate-data"]), "CERT");
        assert_eq!(decode(&user["user"]["client-key-data"]), "KEY");
        assert!(user["user"].get("token").is_none());
        let ctx = &doc["contexts"][0];
        assert_eq!(ctx["name"], "kinet-dev");
        assert_eq!(ctx["context"]["cluster"], "kinet-dev");
        assert_eq!(ctx["context"]["user"], "kinet-dev");
    }

    #[test]
    fn token_kubeconfig_has_only_the_token() {
        let text = kubeconfig("a", "https://x", "CA", &Credentials::Token("s3cr3t".into()));
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        let user = &doc["users"][0]["user"];
        assert_eq!(user["token"], "s3cr3t");
        assert!(user.get("client-certificate-data").is_none());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let dbg = format!("{:?}", Credentials::Token("s3cr3t".into()));
        assert!(!dbg.contains("s3cr3t"));
    }
}
