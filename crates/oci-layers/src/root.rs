//! The root directory as a file descriptor, and the only ways this crate touches the
//! filesystem below it: paths resolved with `openat2(RESOLVE_IN_ROOT)`, last components
//! handled with `*at` calls that never follow them.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{openat, openat2, unlinkat, AtFlags, Dir, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::error::Error;
use crate::paths::clean;

/// Symlinks followed while creating missing parents, as the kernel's own limit.
const MAX_HOPS: u32 = 40;

pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, Error> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        openat(CWD, path, flags, Mode::empty())
            .map(|fd| Root { fd })
            .map_err(|e| Error::Root {
                path: path.to_path_buf(),
                source: e.into(),
            })
    }

    /// Opens `rel` (relative, cleaned) resolved inside the root. Symlinks on the way,
    /// absolute or not, resolve as if the root were `/`; so do `..` components. The last
    /// component is followed too unless `flags` has `NOFOLLOW`.
    pub(crate) fn resolve(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(Into::into)
    }

    /// The directory `rel` (an `O_PATH` descriptor), creating missing directories with mode
    /// 0755 as `tar` does for parents a layer leaves out. A dangling symlink on the way gets
    /// its target created, inside the root.
    pub(crate) fn make_dirs(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.make_dirs_hops(rel, MAX_HOPS)
    }

    fn make_dirs_hops(&self, rel: &Path, hops: u32) -> io::Result<OwnedFd> {
        let dir = OFlags::PATH | OFlags::DIRECTORY;
        match self.resolve(rel, dir) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            other => return other,
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return self.resolve(rel, dir);
        };
        let parent_fd = self.make_dirs_hops(parent, hops)?;
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(Errno::EXIST) if hops > 0 => {
                let target = rustix::fs::readlinkat(&parent_fd, name, Vec::new())?;
                let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                self.make_dirs_hops(&clean(&parent.join(target)), hops - 1)?;
            }
            Err(Errno::EXIST) => return Err(Errno::LOOP.into()),
            Err(e) => return Err(e.into()),
        }
        self.resolve(rel, dir)
    }
}

/// The names in a directory (opened for reading), without `.` and `..`.
pub(crate) fn children(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(&name)));
        }
    }
    Ok(names)
}

/// Opens the directory `name` in `parent` for reading, never through a symlink.
pub(crate) fn open_child_dir(parent: impl AsFd, name: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(parent, name, flags, Mode::empty()).map_err(Into::into)
}

/// Removes `name` in `parent` and, for a directory, everything below it. Symlinks are
/// removed, never followed. A missing `name` is not an error.
pub(crate) fn remove(parent: impl AsFd, name: &std::ffi::OsStr) -> io::Result<()> {
    match unlinkat(&parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => {
            let dir = open_child_dir(&parent, name)?;
            for child in children(&dir)? {
                remove(&dir, &child)?;
            }
            unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}
