//! Where an etcd datastore is: `kinet up --datastore etcd://…` and its TLS files. Plain data, so
//! it exists even in builds without the `etcd` feature (which then refuse it at open).

use std::path::PathBuf;

/// How to reach the etcd cluster.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EtcdConfig {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// PEM files: the CA that signed the members' certificates, and the client's certificate and
    /// key. With a CA the members are reached over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl EtcdConfig {
    /// The members of an `etcd://host:port[,host:port…]` URL.
    pub fn parse(url: &str) -> Result<EtcdConfig, String> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{url:?} is not an etcd://host:port[,host:port…] URL"))?;
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .map(str::to_string)
            .collect();
        if let Some(bad) = endpoints.iter().find(|e| {
            e.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            return Err(format!("{bad:?} in {url:?} is not host:port"));
        }
        Ok(EtcdConfig {
            endpoints,
            ..Default::default()
        })
    }

    /// The endpoints as URLs for the client (built only with the `etcd` feature).
    #[cfg(any(feature = "etcd", test))]
    pub(crate) fn urls(&self) -> Vec<String> {
        let scheme = if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_urls() {
        let c = EtcdConfig::parse("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap();
        assert_eq!(c.endpoints, ["127.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.urls(), ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        for bad in [
            "http://a:1",
            "etcd://a",
            "etcd://:1",
            "etcd://a:x",
            "etcd://a:1,",
        ] {
            assert!(EtcdConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
