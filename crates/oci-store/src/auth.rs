//! Registry credentials from `kubernetes.io/dockerconfigjson` Secrets (`imagePullSecrets`),
//! matched to a registry as the kubelet's credential keyring matches them.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Error;

/// User name and password per registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    by_registry: BTreeMap<String, (String, String)>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Docker Hub answers to several names; credentials for one are for all.
fn canonical_host(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

impl Credentials {
    /// Adds the entries of one `.dockerconfigjson` document (later documents do not
    /// replace earlier ones, as the kubelet tries secrets in order).
    pub fn add_docker_config(&mut self, json: &[u8]) -> Result<(), Error> {
        let invalid = |m: String| Error::Manifest(format!("dockerconfigjson: {m}"));
        let config: DockerConfig =
            serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
        for (key, entry) in config.auths {
            let pair = match (entry.username, entry.password, entry.auth) {
                (Some(u), Some(p), _) => (u, p),
                (_, _, Some(auth)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| invalid(format!("auth of {key}: {e}")))?;
                    let text = String::from_utf8(decoded)
                        .map_err(|_| invalid(format!("auth of {key} is not UTF-8")))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| invalid(format!("auth of {key} is not user:password")))?;
                    (u.to_string(), p.to_string())
                }
                _ => continue,
            };
            self.by_registry.entry(canonical_host(&key)).or_insert(pair);
        }
        Ok(())
    }

    /// The user name and password for `registry` (`docker.io`, `127.0.0.1:5000`...).
    pub fn for_registry(&self, registry: &str) -> Option<&(String, String)> {
        self.by_registry.get(&canonical_host(registry))
    }

    pub fn is_empty(&self) -> bool {
        self.by_registry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockerconfigjson() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:t");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "127.0.0.1:5000": {{"username": "bob", "password": "pw"}},
                "empty.example": {{}}
            }}}}"#
        );
        let mut creds = Credentials::default();
        creds.add_docker_config(json.as_bytes()).unwrap();
        let alice = ("alice".to_string(), "s3cr:t".to_string());
        assert_eq!(creds.for_registry("docker.io"), Some(&alice));
        assert_eq!(creds.for_registry("index.docker.io"), Some(&alice));
        assert_eq!(
            creds.for_registry("127.0.0.1:5000"),
            Some(&("bob".to_string(), "pw".to_string()))
        );
        assert_eq!(creds.for_registry("empty.example"), None);
        assert_eq!(creds.for_registry("quay.io"), None);
        // The first secret that names a registry wins.
        creds
            .add_docker_config(
                br#"{"auths": {"127.0.0.1:5000": {"username": "eve", "password": "x"}}}"#,
            )
            .unwrap();
        assert_eq!(creds.for_registry("127.0.0.1:5000").unwrap().0, "bob");
        assert!(creds
            .add_docker_config(b"{\"auths\": {\"r\": {\"auth\": \"!!\"}}}")
            .is_err());
    }
}
