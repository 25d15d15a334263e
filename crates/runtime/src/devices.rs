//! The host's device nodes, which a privileged container gets in its `/dev` (containerd's
//! `WithDevices(HostDevices())`, read as runc's `GetDevices("/dev")` does).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::init::InitError;
use crate::mounts::Device;

/// Directories of `/dev` that are not devices of the host's, or that the container gets
/// fresh (runc skips the same).
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Every character and block device under the host's `/dev` but its console.
pub fn host() -> Result<Vec<Device>, InitError> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out).map_err(|source| InitError::Sys {
        what: "listing the host's devices".into(),
        source,
    })?;
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Device>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|d| name == *d) {
                walk(&path, out)?;
            }
            continue;
        }
        if name == "console" || !(kind.is_char_device() || kind.is_block_device()) {
            continue;
        }
        // A device gone since the listing is not the container's either.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(Device {
            path: path.to_string_lossy().into_owned(),
            block: kind.is_block_device(),
            major: rustix::fs::major(rdev).into(),
            minor: rustix::fs::minor(rdev).into(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}
