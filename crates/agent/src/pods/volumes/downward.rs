//! downwardAPI volume files: pod fields (`fieldRef`) and container resources
//! (`resourceFieldRef`), formatted as the kubelet's `fieldpath` and `resource` packages do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, ResourceFieldSelector};
use kinet_controllers::scheduler::resources::parse_quantity;

use super::payload::{File, Payload, PayloadError, Sources};

pub(super) fn collect(
    items: &[DownwardAPIVolumeFile],
    src: &Sources<'_>,
    default_mode: u32,
) -> Result<Payload, PayloadError> {
    let mut out = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field(src, &f.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            resource(src, r)
        } else {
            Ok(String::new())
        }
        .map_err(PayloadError::Downward)?;
        let mode = item.mode.map_or(default_mode, |m| m as u32);
        out.insert(
            item.path.clone(),
            File {
                data: value.into_bytes(),
                mode,
            },
        );
    }
    Ok(out)
}

/// `fieldpath.ExtractFieldPathAsString` for the fields a volume may project.
fn field(src: &Sources<'_>, path: &str) -> Result<String, String> {
    let meta = &src.pod.metadata;
    let subscript = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        _ => subscript("metadata.labels['", &meta.labels)
            .or_else(|| subscript("metadata.annotations['", &meta.annotations))
            .ok_or_else(|| format!("unsupported fieldPath: {path}"))?,
    })
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines, values quoted.
fn format_map(map: &Option<BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    lines.join("\n")
}

/// `resource.ExtractContainerResourceValue`: the value divided by the divisor, rounded up;
/// limits a container leaves unset are the node's allocatable.
fn resource(src: &Sources<'_>, r: &ResourceFieldSelector) -> Result<String, String> {
    let container = container(src, r.container_name.as_deref())?;
    let res = container.resources.as_ref();
    let (list, name) = match r.resource.split_once('.') {
        Some(("limits", name)) => (res.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (res.and_then(|r| r.requests.as_ref()), name),
        _ => return Err(format!("unsupported container resource : {}", r.resource)),
    };
    let limit = r.resource.starts_with("limits.");
    let value = list
        .and_then(|l| l.get(name))
        .or_else(|| limit.then(|| src.allocatable.get(name)).flatten())
        .map_or(Some(0.0), |q| parse_quantity(&q.0))
        .ok_or_else(|| format!("invalid quantity for {}", r.resource))?;
    let divisor = r
        .divisor
        .as_ref()
        .map_or(Some(1.0), |d| parse_quantity(&d.0))
        .filter(|d| *d > 0.0)
        .ok_or_else(|| format!("invalid divisor for {}", r.resource))?;
    // In whole milli-units, as the kubelet divides cpu's MilliValue (floats would turn
    // 100m / 1m into 100.00000000000001, rounded up to 101).
    let milli = |q: f64| (q * 1000.0).round() as i128;
    let (value, divisor) = (milli(value), milli(divisor).max(1));
    Ok(((value + divisor - 1) / divisor).to_string())
}

fn container<'p>(src: &Sources<'p>, name: Option<&str>) -> Result<&'p Container, String> {
    let spec = src.pod.spec.as_ref().ok_or("pod has no spec")?;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    match name.filter(|n| !n.is_empty()) {
        Some(n) => all
            .into_iter()
            .find(|c| c.name == n)
            .ok_or_else(|| format!("container {n} not found")),
        None => spec
            .containers
            .first()
            .ok_or_else(|| "pod has no containers".to_string()),
    }
}
