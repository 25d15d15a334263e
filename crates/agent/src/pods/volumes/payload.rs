//! The files of configMap, secret, downwardAPI and projected volumes, as the kubelet's
//! `MakePayload`/`CollectData` compute them: keys or `items`, modes, `optional`, and the
//! kubelet's error messages. Pure: the caller fetches the objects and tokens.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};

use super::downward;

/// The API defaults `defaultMode` of these volumes to 0644.
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by path relative to the volume.
pub type Payload = BTreeMap<String, File>;

/// A service-account token a projected volume asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenRequest {
    /// Empty: the API server's audiences.
    pub audience: String,
    pub expiration_seconds: i64,
}

/// What the volumes read, fetched by the caller from the pod's namespace.
pub struct Sources<'a> {
    pub pod: &'a Pod,
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub tokens: &'a BTreeMap<TokenRequest, String>,
    /// The node's allocatable resources: `limits.*` of a container without limits.
    pub allocatable: &'a BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

/// Why a volume could not be set up; shown as kubelet shows it, after
/// `MountVolume.SetUp failed for volume "<name>" : `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigKey(String),
    #[error("references non-existent secret key: {0}")]
    MissingSecretKey(String),
    #[error("{0}")]
    Downward(String),
    #[error("no token for audience {0:?}")]
    MissingToken(String),
}

/// The ConfigMaps and Secrets the pod's volumes read: (config maps, secrets).
pub fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for v in volumes(pod) {
        if let Some(cm) = &v.config_map {
            maps.push(cm.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            maps.extend(p.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(p.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    maps.sort();
    maps.dedup();
    secrets.sort();
    secrets.dedup();
    (maps, secrets)
}

/// The tokens the pod's projected volumes ask for (kubelet's default expiry is one hour).
pub fn token_requests(pod: &Pod) -> Vec<TokenRequest> {
    let mut out: Vec<TokenRequest> = volumes(pod)
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenRequest {
            audience: t.audience.clone().unwrap_or_default(),
            expiration_seconds: t.expiration_seconds.unwrap_or(3600),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the pod has volumes at all.
pub fn any(pod: &Pod) -> bool {
    volumes(pod).next().is_some()
}

/// Whether a downwardAPI file reads a container resource (whose limits default to the
/// node's allocatable).
pub fn needs_allocatable(pod: &Pod) -> bool {
    volumes(pod).any(|v| {
        let projected = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
        let mut items = v
            .downward_api
            .iter()
            .flat_map(|d| d.items.iter().flatten())
            .chain(
                projected
                    .flat_map(|s| s.downward_api.iter().flat_map(|d| d.items.iter().flatten())),
            );
        items.any(|i| i.resource_field_ref.is_some())
    })
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten())
}

/// The files of `volume`; `None` for volume types that are not projections of API data.
pub fn payload(volume: &Volume, src: &Sources<'_>) -> Option<Result<Payload, PayloadError>> {
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, |m| m as u32);
    if let Some(cm) = &volume.config_map {
        let r = KeyRef {
            name: &cm.name,
            items: cm.items.as_deref(),
            default_mode: mode(cm.default_mode),
            optional: cm.optional == Some(true),
        };
        return Some(config_map(src, r));
    }
    if let Some(s) = &volume.secret {
        let r = KeyRef {
            name: s.secret_name.as_deref().unwrap_or_default(),
            items: s.items.as_deref(),
            default_mode: mode(s.default_mode),
            optional: s.optional == Some(true),
        };
        return Some(secret(src, r));
    }
    if let Some(d) = &volume.downward_api {
        let items = d.items.as_deref().unwrap_or_default();
        return Some(downward::collect(items, src, mode(d.default_mode)));
    }
    let projected = volume.projected.as_ref()?;
    let default_mode = mode(projected.default_mode);
    Some(projected_payload(projected, src, default_mode))
}

fn projected_payload(
    projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    src: &Sources<'_>,
    default_mode: u32,
) -> Result<Payload, PayloadError> {
    let mut out = Payload::new();
    // Later sources win on the same path, as the kubelet's map assignment does.
    for s in projected.sources.iter().flatten() {
        let key_ref = |name, items, optional: Option<bool>| KeyRef {
            name,
            items,
            default_mode,
            optional: optional == Some(true),
        };
        let part = if let Some(cm) = &s.config_map {
            config_map(src, key_ref(&cm.name, cm.items.as_deref(), cm.optional))?
        } else if let Some(sec) = &s.secret {
            secret(src, key_ref(&sec.name, sec.items.as_deref(), sec.optional))?
        } else if let Some(d) = &s.downward_api {
            downward::collect(d.items.as_deref().unwrap_or_default(), src, default_mode)?
        } else if let Some(t) = &s.service_account_token {
            let req = TokenRequest {
                audience: t.audience.clone().unwrap_or_default(),
                expiration_seconds: t.expiration_seconds.unwrap_or(3600),
            };
            let token = src
                .tokens
                .get(&req)
                .ok_or_else(|| PayloadError::MissingToken(req.audience.clone()))?;
            let file = File {
                data: token.clone().into_bytes(),
                mode: default_mode,
            };
            Payload::from([(t.path.clone(), file)])
        } else {
            Payload::new()
        };
        out.extend(part);
    }
    Ok(out)
}

/// A configMap or secret reference: which object, which keys, which modes.
struct KeyRef<'a> {
    name: &'a str,
    items: Option<&'a [KeyToPath]>,
    default_mode: u32,
    optional: bool,
}

fn config_map(src: &Sources<'_>, r: KeyRef<'_>) -> Result<Payload, PayloadError> {
    let data = src.config_maps.get(r.name).map(|cm| {
        let text = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        let binary = cm
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()));
        text.chain(binary).collect()
    });
    project(
        data,
        r,
        PayloadError::ConfigMapNotFound,
        PayloadError::MissingConfigKey,
    )
}

fn secret(src: &Sources<'_>, r: KeyRef<'_>) -> Result<Payload, PayloadError> {
    let data = src.secrets.get(r.name).map(|s| {
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    });
    project(
        data,
        r,
        PayloadError::SecretNotFound,
        PayloadError::MissingSecretKey,
    )
}

/// Every key as a file, or only `items` (each at its path, with its own mode if set). A
/// missing object or key is an error unless the reference is optional.
fn project(
    data: Option<BTreeMap<String, Vec<u8>>>,
    r: KeyRef<'_>,
    not_found: fn(String) -> PayloadError,
    missing_key: fn(String) -> PayloadError,
) -> Result<Payload, PayloadError> {
    let Some(data) = data else {
        return if r.optional {
            Ok(Payload::new())
        } else {
            Err(not_found(r.name.into()))
        };
    };
    let items = r.items.unwrap_or_default();
    if items.is_empty() {
        let file = |data| File {
            data,
            mode: r.default_mode,
        };
        return Ok(data.into_iter().map(|(k, v)| (k, file(v))).collect());
    }
    let mut out = Payload::new();
    for item in items {
        let Some(content) = data.get(&item.key).cloned() else {
            if r.optional {
                continue;
            }
            return Err(missing_key(item.key.clone()));
        };
        let mode = item.mode.map_or(r.default_mode, |m| m as u32);
        out.insert(
            item.path.clone(),
            File {
                data: content,
                mode,
            },
        );
    }
    Ok(out)
}
