//! Manifests as registries and archives serve them: OCI and Docker schema 2 image
//! manifests, OCI indexes and Docker manifest lists (one image per platform), and Docker
//! schema 1, converted as containerd's old converter did. Pure: bytes in, plans out.

use oci_spec::image::{Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Os};
use serde::Deserialize;

use crate::Error;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The `Accept` list of a manifest request: everything [`parse`] understands.
pub const ACCEPTED: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    SCHEMA1_SIGNED,
    SCHEMA1,
];

/// What a manifest request returned.
#[derive(Debug)]
pub enum Fetched {
    /// One image per platform: choose with [`choose`] and fetch that manifest.
    Index(Box<ImageIndex>),
    /// An image: its config and layers.
    Image(Box<ImageManifest>),
    /// A Docker schema-1 image, already in layer order.
    Schema1(Schema1),
}

/// The fields that tell manifest kinds apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versioned {
    schema_version: u32,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// Parses a manifest, an index or a schema-1 manifest. `content_type` is the response's
/// or descriptor's media type, used when the document does not carry one.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Fetched, Error> {
    let invalid = |e: serde_json::Error| Error::Manifest(e.to_string());
    let versioned: Versioned = serde_json::from_slice(body).map_err(invalid)?;
    if versioned.schema_version == 1 {
        return schema1(body).map(Fetched::Schema1);
    }
    if versioned.schema_version != 2 {
        return Err(Error::Manifest(format!(
            "unsupported schema version {}",
            versioned.schema_version
        )));
    }
    let media_type = versioned.media_type.as_deref().or(content_type);
    let is_index = match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ => versioned.manifests.is_some(),
    };
    if is_index {
        serde_json::from_slice(body)
            .map(|i| Fetched::Index(Box::new(i)))
            .map_err(invalid)
    } else {
        serde_json::from_slice(body)
            .map(|m| Fetched::Image(Box::new(m)))
            .map_err(invalid)
    }
}

/// A platform, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: Os,
    pub architecture: Arch,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform kinet runs on, with the CPU variant containerd assumes for it.
    pub fn host() -> Platform {
        let architecture = Arch::default();
        let variant = match architecture {
            Arch::ARM64 => Some("v8".to_string()),
            _ => None,
        };
        Platform {
            os: Os::Linux,
            architecture,
            variant,
        }
    }
}

/// The index entry for `platform`, as containerd's matcher picks it: same OS and
/// architecture; an entry with the exact variant wins over one without a variant
/// (attestation manifests, whose platform is `unknown/unknown`, never match).
pub fn choose<'a>(index: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates = index.manifests().iter().filter(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == platform.os && *p.architecture() == platform.architecture)
    });
    let mut fallback = None;
    for d in candidates {
        let variant = d.platform().as_ref().and_then(|p| p.variant().clone());
        if variant == platform.variant {
            return Some(d);
        }
        if variant.is_none() {
            fallback = fallback.or(Some(d));
        }
    }
    fallback
}

/// A schema-1 image in the order its layers apply (oldest first), throwaway layers left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema1 {
    /// Layer blob digests, oldest first.
    pub layers: Vec<String>,
    /// The newest history entry's `v1Compatibility`: the image's config.
    pub config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSchema1 {
    fs_layers: Vec<FsLayer>,
    history: Vec<History>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct History {
    v1_compatibility: String,
}

/// Converts a schema-1 manifest (signed or not; signatures are ignored): `fsLayers` and
/// `history` are newest first, so both are reversed; throwaway entries have no layer.
pub fn schema1(body: &[u8]) -> Result<Schema1, Error> {
    let raw: RawSchema1 =
        serde_json::from_slice(body).map_err(|e| Error::Manifest(format!("schema 1: {e}")))?;
    if raw.fs_layers.len() != raw.history.len() || raw.history.is_empty() {
        return Err(Error::Manifest(
            "schema 1: fsLayers and history differ in length".into(),
        ));
    }
    let compat: Vec<serde_json::Value> = raw
        .history
        .iter()
        .map(|h| serde_json::from_str(&h.v1_compatibility))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Manifest(format!("schema 1 v1Compatibility: {e}")))?;
    let layers = raw
        .fs_layers
        .iter()
        .zip(&compat)
        .rev()
        .filter(|(_, c)| c.get("throwaway").and_then(|t| t.as_bool()) != Some(true))
        .map(|(l, _)| l.blob_sum.clone())
        .collect();
    Ok(Schema1 {
        layers,
        config: compat[0].clone(),
    })
}

/// The OCI image config of a schema-1 image, once its layers' diff_ids are known.
pub fn schema1_config(image: &Schema1, diff_ids: Vec<String>) -> Result<Vec<u8>, Error> {
    let c = &image.config;
    let host = Platform::host();
    let config = serde_json::json!({
        "created": c.get("created"),
        "author": c.get("author"),
        "architecture": c.get("architecture").cloned().unwrap_or_else(|| host.architecture.to_string().into()),
        "os": c.get("os").cloned().unwrap_or_else(|| "linux".into()),
        "config": c.get("config"),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config: ImageConfiguration =
        serde_json::from_value(config).map_err(|e| Error::Manifest(format!("schema 1: {e}")))?;
    serde_json::to_vec(&config).map_err(|e| Error::Manifest(e.to_string()))
}

/// Parses an image config blob.
pub fn parse_config(body: &[u8]) -> Result<ImageConfiguration, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Manifest(format!("image config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(entries: &[(&str, &str, Option<&str>, &str)]) -> Vec<u8> {
        let manifests: Vec<_> = entries
            .iter()
            .map(|(os, arch, variant, hex)| {
                let mut platform = json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = json!(v);
                }
                json!({
                    "mediaType": DOCKER_MANIFEST,
                    "digest": format!("sha256:{}", hex.repeat(64)),
                    "size": 100,
                    "platform": platform,
                })
            })
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": manifests,
        }))
        .unwrap()
    }

    fn chosen(body: &[u8], platform: &Platform) -> Option<String> {
        let Fetched::Index(index) = parse(body, None).unwrap() else {
            panic!("not an index")
        };
        choose(&index, platform).map(|d| d.digest().to_string()[7..8].to_string())
    }

    #[test]
    fn chooses_the_platform() {
        let body = index(&[
            ("unknown", "unknown", None, "0"),
            ("linux", "arm", Some("v7"), "1"),
            ("linux", "arm64", None, "2"),
            ("linux", "arm64", Some("v8"), "3"),
            ("linux", "amd64", None, "4"),
            ("windows", "amd64", None, "5"),
        ]);
        let amd64 = Platform {
            os: Os::Linux,
            architecture: Arch::Amd64,
            variant: None,
        };
        assert_eq!(chosen(&body, &amd64).as_deref(), Some("4"));
        let arm64 = Platform {
            os: Os::Linux,
            architecture: Arch::ARM64,
            variant: Some("v8".into()),
        };
        assert_eq!(chosen(&body, &arm64).as_deref(), Some("3"));
        let s390 = Platform {
            os: Os::Linux,
            architecture: Arch::s390x,
            variant: None,
        };
        assert_eq!(chosen(&body, &s390), None);
        let only_plain = index(&[("linux", "arm64", None, "2")]);
        assert_eq!(chosen(&only_plain, &arm64).as_deref(), Some("2"));
    }

    #[test]
    fn tells_manifests_from_indexes() {
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
            "layers": [],
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        assert!(matches!(
            parse(&body, Some(OCI_MANIFEST)),
            Ok(Fetched::Image(_))
        ));
        assert!(matches!(parse(&body, None), Ok(Fetched::Image(_))));
        let oci_index = json!({"schemaVersion": 2, "manifests": []});
        let body = serde_json::to_vec(&oci_index).unwrap();
        assert!(matches!(parse(&body, None), Ok(Fetched::Index(_))));
        assert!(matches!(
            parse(br#"{"schemaVersion": 3}"#, None),
            Err(Error::Manifest(_))
        ));
        assert!(parse(b"not json", None).is_err());
    }

    /// `nginx:1.7.9`'s shape: newest first, throwaway entries for metadata-only steps.
    #[test]
    fn converts_schema1() {
        let compat = |id: &str, extra: serde_json::Value| {
            let mut v = json!({"id": id});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"v1Compatibility": v.to_string()})
        };
        let body = json!({
            "schemaVersion": 1,
            "name": "library/nginx",
            "tag": "1.7.9",
            "architecture": "amd64",
            "fsLayers": [
                {"blobSum": "sha256:newest"},
                {"blobSum": "sha256:empty"},
                {"blobSum": "sha256:oldest"},
            ],
            "history": [
                compat("3", json!({"architecture": "amd64", "os": "linux", "config": {
                    "Cmd": ["nginx", "-g", "daemon off;"],
                    "Env": ["PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.7.9-1~wheezy"],
                    "ExposedPorts": {"80/tcp": {}},
                }})),
                compat("2", json!({"throwaway": true})),
                compat("1", json!({})),
            ],
            "signatures": [{"header": {}, "signature": "x", "protected": "y"}],
        });
        let image = schema1(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(image.layers, ["sha256:oldest", "sha256:newest"]);
        let config = schema1_config(&image, vec!["sha256:d1".into(), "sha256:d2".into()]).unwrap();
        let config = parse_config(&config).unwrap();
        assert_eq!(config.rootfs().diff_ids(), &["sha256:d1", "sha256:d2"]);
        assert_eq!(*config.architecture(), Arch::Amd64);
        let process = config.config().as_ref().unwrap();
        assert_eq!(
            process.cmd().as_deref(),
            Some(&["nginx".to_string(), "-g".into(), "daemon off;".into()][..])
        );
        assert!(matches!(
            parse(&serde_json::to_vec(&body).unwrap(), Some(SCHEMA1_SIGNED)),
            Ok(Fetched::Schema1(_))
        ));
        let broken =
            json!({"schemaVersion": 1, "fsLayers": [{"blobSum": "sha256:a"}], "history": []});
        assert!(schema1(&serde_json::to_vec(&broken).unwrap()).is_err());
    }
}
