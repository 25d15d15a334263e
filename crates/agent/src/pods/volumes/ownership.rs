//! `fsGroup`: a volume's files group-owned by it and group-accessible, directories setgid so
//! new files inherit the group, as the kubelet's `SetVolumeOwnership` does.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW: u32 = 0o660;
const RO: u32 = 0o440;
const DIR_EXEC: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// The mode a file of mode `mode` gets: group read (and write, unless the volume is
/// read-only); directories also group search and setgid.
pub fn mode(mode: u32, dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO } else { RW };
    if dir {
        mask |= SETGID | DIR_EXEC;
    }
    mode | mask
}

/// Gives everything under `root` (itself included) to group `gid`; symlinks are
/// re-owned, never followed.
pub fn apply(root: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(root)?;
    std::os::unix::fs::lchown(root, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let wanted = mode(meta.mode() & 0o7777, meta.is_dir(), read_only);
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(wanted))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(root)? {
            apply(&entry?.path(), gid, read_only)?;
        }
    }
    Ok(())
}
