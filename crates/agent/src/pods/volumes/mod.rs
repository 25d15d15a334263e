//! Pod volumes, as the kubelet's volume manager sets them up: each under the pod's
//! directory at `volumes/kubernetes.io~<plugin>/<name>`, then bound into containers by
//! their `volumeMounts` ([`container_mounts`]).
//!
//! - pure: [`payload`] (configMap, secret, downwardAPI and projected files, with the
//!   kubelet's messages), the mount plan in [`mounts`];
//! - side effects: [`atomic`] (the kubelet's AtomicWriter layout, so updates are atomic),
//!   [`host_path`] (type checks), and [`set_up`]/[`tear_down`] here (emptyDir; tmpfs for
//!   `medium: Memory` and, as the kubelet does, for secret and projected volumes),
//!   [`ownership`] (`fsGroup`).
//!
//! Calling [`set_up`] again rewrites projections whose objects changed (a no-op
//! otherwise), as the kubelet's periodic sync does; subPath mounts keep the old file.

mod atomic;
mod downward;
mod host_path;
mod mounts;
pub mod ownership;
mod payload;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Volume;
use kinet_controllers::scheduler::resources::parse_quantity;

pub use mounts::{container_mounts, resolve_sub_path, MountError, Mountable};
pub use payload::{
    any, needs_allocatable, references, token_requests, File, Payload, PayloadError, Sources,
    TokenRequest,
};

/// A volume that could not be set up, worded as the kubelet's FailedMount event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct SetUpError {
    pub volume: String,
    pub message: String,
}

/// Sets up (or refreshes) every volume of `src.pod` under `pod_dir`, and returns what each
/// one mounts from, by volume name. Volume types kinet does not support are an error.
pub fn set_up(
    pod_dir: &Path,
    src: &Sources<'_>,
) -> Result<BTreeMap<String, Mountable>, SetUpError> {
    let mut out = BTreeMap::new();
    for v in src.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let fail = |message: String| SetUpError {
            volume: v.name.clone(),
            message,
        };
        let mountable = set_up_one(pod_dir, v, src).map_err(fail)?;
        // hostPath belongs to the host: the kubelet never re-owns it.
        if let Some(gid) = fs_group(src.pod).filter(|_| v.host_path.is_none()) {
            ownership::apply(&mountable.path, gid, mountable.read_only)
                .map_err(|e| fail(format!("applying fsGroup {gid}: {e}")))?;
        }
        out.insert(v.name.clone(), mountable);
    }
    Ok(out)
}

/// The pod's `securityContext.fsGroup`.
pub fn fs_group(pod: &k8s_openapi::api::core::v1::Pod) -> Option<u32> {
    let sc = pod.spec.as_ref()?.security_context.as_ref()?;
    sc.fs_group.and_then(|g| u32::try_from(g).ok())
}

fn set_up_one(pod_dir: &Path, v: &Volume, src: &Sources<'_>) -> Result<Mountable, String> {
    let io = |e: io::Error| e.to_string();
    if let Some(h) = &v.host_path {
        host_path::check(Path::new(&h.path), h.type_.as_deref().unwrap_or(""))?;
        return Ok(Mountable {
            path: PathBuf::from(&h.path),
            read_only: false,
        });
    }
    if let Some(e) = &v.empty_dir {
        let dir = volume_dir(pod_dir, "empty-dir", &v.name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        if e.medium.as_deref() == Some("Memory") {
            let size = e.size_limit.as_ref().and_then(|q| parse_quantity(&q.0));
            mount_tmpfs(&dir, size.map(|s| s.ceil() as u64)).map_err(io)?;
        }
        // The kubelet makes emptyDirs world-writable, so any container user can write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(Mountable {
            path: dir,
            read_only: false,
        });
    }
    let plugin = if v.config_map.is_some() {
        "configmap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downward-api"
    } else {
        "projected"
    };
    let Some(files) = payload::payload(v, src) else {
        return Err("volume type not supported by kinet (emptyDir, hostPath, configMap, secret, downwardAPI and projected are)".into());
    };
    let mut files = files.map_err(|e| e.to_string())?;
    if fs_group(src.pod).is_some() {
        // The modes fsGroup will give them, so an unchanged volume compares equal.
        for f in files.values_mut() {
            f.mode = ownership::mode(f.mode, false, true);
        }
    }
    let dir = volume_dir(pod_dir, plugin, &v.name);
    if matches!(plugin, "secret" | "projected") {
        // Secrets and tokens live in memory, never on the node's disk, as with the kubelet.
        std::fs::create_dir_all(&dir).map_err(io)?;
        mount_tmpfs(&dir, None).map_err(io)?;
    }
    atomic::write(&dir, &files).map_err(io)?;
    Ok(Mountable {
        path: dir,
        read_only: true,
    })
}

/// `<pod dir>/volumes/kubernetes.io~<plugin>/<name>`, the kubelet's layout.
pub fn volume_dir(pod_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    pod_dir
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

/// A tmpfs on `dir` (unless one is there already), `size` bytes at most.
fn mount_tmpfs(dir: &Path, size: Option<u64>) -> io::Result<()> {
    if mounted(dir)? {
        return Ok(());
    }
    let mut data = String::from("mode=0777");
    if let Some(size) = size {
        data.push_str(&format!(",size={size}"));
    }
    let flags = rustix::mount::MountFlags::NODEV | rustix::mount::MountFlags::NOSUID;
    let data = std::ffi::CString::new(data)?;
    rustix::mount::mount("tmpfs", dir, "tmpfs", flags, data.as_c_str()).map_err(Into::into)
}

/// Whether something is mounted on `dir` (it sits on another device than its parent).
fn mounted(dir: &Path) -> io::Result<bool> {
    let parent = dir.parent().unwrap_or(dir);
    Ok(std::fs::metadata(dir)?.dev() != std::fs::metadata(parent)?.dev())
}

/// Unmounts the pod's tmpfs volumes and removes its volume directories.
pub fn tear_down(pod_dir: &Path) -> io::Result<()> {
    let root = pod_dir.join("volumes");
    let plugins = match std::fs::read_dir(&root) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for plugin in plugins {
        for volume in std::fs::read_dir(plugin?.path())? {
            let path = volume?.path();
            if mounted(&path)? {
                rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)?;
            }
        }
    }
    std::fs::remove_dir_all(root)
}

#[cfg(test)]
mod tests;
