//! One layer's entries applied in order: whiteouts and opaque directories hide what lower
//! layers left, every other entry replaces what is at its path.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::error::{Context, Error};
use crate::paths::{classify, clean, Action};
use crate::root::{children, open_child_dir, remove, Root};

const XATTR_PREFIX: &str = "SCHILY.xattr.";
const COPY_BUFFER: usize = 128 * 1024;

pub(crate) struct Unpacker<'r> {
    root: &'r Root,
    /// Paths this layer created: whiteouts only hide what lower layers left.
    written: BTreeSet<PathBuf>,
    /// Directory modes and mtimes are set last: adding children changes a directory's
    /// mtime, and a read-only mode would stop the children being added.
    dirs: Vec<DirAttrs>,
    /// Ownership is kept only as root, as `tar --same-owner` does by default.
    as_root: bool,
    buffer: Vec<u8>,
}

struct DirAttrs {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// What an entry creates.
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    Hardlink(PathBuf),
    Node(FileType, u32, u32),
}

impl<'r> Unpacker<'r> {
    pub(crate) fn new(root: &'r Root) -> Self {
        Unpacker {
            root,
            written: BTreeSet::new(),
            dirs: Vec::new(),
            as_root: rustix::process::geteuid().is_root(),
            buffer: vec![0; COPY_BUFFER],
        }
    }

    pub(crate) fn run(mut self, stream: impl Read) -> Result<(), Error> {
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(Error::Read)? {
            self.entry(&mut entry.map_err(Error::Read)?)?;
        }
        self.finish_dirs()
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let path = clean(&entry.path().map_err(Error::Read)?);
        match classify(&path) {
            Action::Root | Action::Ignore => Ok(()),
            Action::Whiteout { parent, name } => {
                let parent_fd = match self.root.resolve(parent, OFlags::PATH | OFlags::DIRECTORY) {
                    Err(e) if missing(&e) => return Ok(()),
                    other => other.at("resolving", parent)?,
                };
                self.remove_lower(&parent_fd, &name, &parent.join(&name))
            }
            Action::Opaque { dir } => {
                let dir_fd = match self.root.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY) {
                    Err(e) if missing(&e) => return Ok(()),
                    other => other.at("resolving", dir)?,
                };
                for child in children(&dir_fd).at("listing", dir)? {
                    self.remove_lower(&dir_fd, &child, &dir.join(&child))?;
                }
                Ok(())
            }
            Action::Create { parent, name } => {
                let Some(kind) = kind(entry.header(), &path)? else {
                    return Ok(());
                };
                let parent_fd = self
                    .root
                    .make_dirs(parent)
                    .at("resolving parent of", &path)?;
                self.create(entry, &parent_fd, name, &path, kind)?;
                self.written.insert(path);
                Ok(())
            }
        }
    }

    /// Removes what lower layers put at `rel` (`name` in `parent`), keeping anything this
    /// layer wrote there or below.
    fn remove_lower(&self, parent: impl AsFd, name: &OsStr, rel: &Path) -> Result<(), Error> {
        if !self.wrote_at_or_below(rel) {
            return remove(parent, name).at("removing", rel);
        }
        let dir = match open_child_dir(&parent, name) {
            Ok(dir) => dir,
            // This layer's own non-directory (ELOOP: a symlink), or nothing at all.
            Err(e) if missing(&e) || is(&e, Errno::NOTDIR) || is(&e, Errno::LOOP) => return Ok(()),
            Err(e) => return Err(e).at("opening", rel),
        };
        for child in children(&dir).at("listing", rel)? {
            self.remove_lower(&dir, &child, &rel.join(&child))?;
        }
        Ok(())
    }

    fn wrote_at_or_below(&self, rel: &Path) -> bool {
        // Paths order component-wise, so descendants of `rel` directly follow it.
        self.written
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(rel))
    }

    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        kind: Kind,
    ) -> Result<(), Error> {
        let header = entry.header();
        let mode = header.mode().map_err(Error::Read)? & 0o7777;
        let mtime = header.mtime().map_err(Error::Read)?;
        let owner = (
            header.uid().map_err(Error::Read)?,
            header.gid().map_err(Error::Read)?,
        );
        let existing = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let dir_over_dir = matches!(kind, Kind::Dir)
            && existing
                .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !dir_over_dir {
            remove(parent, name).at("replacing", path)?;
        }
        match &kind {
            Kind::Dir if dir_over_dir => {}
            Kind::Dir => rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .at("creating directory", path)?,
            Kind::File => self.write_file(entry, parent, name).at("writing", path)?,
            Kind::Symlink(target) => {
                rustix::fs::symlinkat(target, parent, name).at("creating symlink", path)?
            }
            Kind::Hardlink(target) => self
                .hardlink(target, parent, name)
                .at("creating hardlink", path)?,
            Kind::Node(file_type, major, minor) => rustix::fs::mknodat(
                parent,
                name,
                *file_type,
                Mode::from_raw_mode(mode),
                rustix::fs::makedev(*major, *minor),
            )
            .at("creating node", path)?,
        }
        if let Kind::Hardlink(_) = kind {
            // A hardlink is the target's inode: its attributes came with the target.
            return Ok(());
        }
        // chown clears setuid bits and security.capability, so it goes first.
        if self.as_root {
            let (uid, gid) = (owner.0 as u32, owner.1 as u32);
            rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .at("chown", path)?;
        }
        set_xattrs(entry, parent, name).at("setting xattrs on", path)?;
        match kind {
            Kind::Dir => self.dirs.push(DirAttrs {
                path: path.to_path_buf(),
                mode,
                mtime,
            }),
            Kind::Symlink(_) => set_mtime(parent, name, mtime).at("setting mtime of", path)?,
            _ => {
                rustix::fs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .at("chmod", path)?;
                set_mtime(parent, name, mtime).at("setting mtime of", path)?;
            }
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        entry: &mut impl Read,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> io::Result<()> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut file = File::from(rustix::fs::openat(
            parent,
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?);
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            file.write_all(&self.buffer[..n])?;
        }
    }

    /// Links to an earlier entry of this layer or a lower one, found inside the root.
    fn hardlink(&self, target: &Path, parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
        let (Some(target_parent), Some(target_name)) = (target.parent(), target.file_name()) else {
            return Err(Errno::INVAL.into());
        };
        let target_dir = self
            .root
            .resolve(target_parent, OFlags::PATH | OFlags::DIRECTORY)?;
        rustix::fs::linkat(&target_dir, target_name, parent, name, AtFlags::empty())
            .map_err(Into::into)
    }

    fn finish_dirs(&self) -> Result<(), Error> {
        for dir in &self.dirs {
            let fd = match self.root.resolve(
                &dir.path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            ) {
                // A later entry of this layer replaced or removed the directory.
                Err(e) if missing(&e) || is(&e, Errno::NOTDIR) || is(&e, Errno::LOOP) => continue,
                other => other.at("opening", &dir.path)?,
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode)).at("chmod", &dir.path)?;
            rustix::fs::futimens(&fd, &timestamps(dir.mtime)).at("setting mtime of", &dir.path)?;
        }
        Ok(())
    }
}

/// What the entry creates; None for headers that create nothing (pax global headers).
fn kind(header: &tar::Header, path: &Path) -> Result<Option<Kind>, Error> {
    use tar::EntryType as T;
    let link = || -> Result<PathBuf, Error> {
        header
            .link_name()
            .map_err(Error::Read)?
            .map(|l| l.into_owned())
            .ok_or_else(|| Error::Entry {
                op: "reading link target of",
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, "no link name"),
            })
    };
    let device = || -> Result<(u32, u32), Error> {
        let major = header.device_major().map_err(Error::Read)?.unwrap_or(0);
        let minor = header.device_minor().map_err(Error::Read)?.unwrap_or(0);
        Ok((major, minor))
    };
    Ok(Some(match header.entry_type() {
        T::Regular | T::Continuous | T::GNUSparse => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink(link()?),
        T::Link => Kind::Hardlink(clean(&link()?)),
        T::Char => {
            let (major, minor) = device()?;
            Kind::Node(FileType::CharacterDevice, major, minor)
        }
        T::Block => {
            let (major, minor) = device()?;
            Kind::Node(FileType::BlockDevice, major, minor)
        }
        T::Fifo => Kind::Node(FileType::Fifo, 0, 0),
        T::XGlobalHeader => return Ok(None),
        other => {
            return Err(Error::Entry {
                op: "reading",
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unsupported tar entry type {other:?}"),
                ),
            })
        }
    }))
}

/// Sets the entry's `SCHILY.xattr.*` pax records. The node is reached through an `O_PATH`
/// descriptor's `/proc/self/fd` link, which works for every file type without following a
/// symlink in the image. Filesystems without xattrs are skipped, as containerd does.
fn set_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    parent: &OwnedFd,
    name: &OsStr,
) -> io::Result<()> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(());
    };
    let mut node: Option<OwnedFd> = None;
    for ext in extensions {
        let ext = ext?;
        let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix(XATTR_PREFIX)) else {
            continue;
        };
        let fd = match &node {
            Some(fd) => fd,
            None => node.insert(rustix::fs::openat(
                parent,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?),
        };
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match rustix::fs::setxattr(link.as_str(), key, ext.value_bytes(), XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn timestamps(mtime: u64) -> Timestamps {
    let time = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

fn set_mtime(parent: &OwnedFd, name: &OsStr, mtime: u64) -> io::Result<()> {
    rustix::fs::utimensat(parent, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(Into::into)
}

fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

fn missing(e: &io::Error) -> bool {
    is(e, Errno::NOENT)
}
