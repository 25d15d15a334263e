//! File-system helpers for a store that several processes use at once: `flock` locks,
//! write-then-rename, temporary directories removed on every exit path.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::Error;

/// An `flock` held until dropped (closing the file releases it).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Blocks until `path` is locked, exclusively or shared.
pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<FileLock, Error> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io(path))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, op).map_err(|e| Error::io(path)(e.into()))?;
    Ok(FileLock { _file: file })
}

/// A fresh path under `dir` that no other writer picks.
pub(crate) fn unique(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}-{:016x}", rand::random::<u64>()))
}

/// Writes `bytes` to `dest` through a temporary file in `tmp` (same file system), so
/// readers see the old content or the new, never a part.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), Error> {
    let path = unique(tmp, "write");
    let result = File::create(&path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&path, dest));
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result.map_err(Error::io(dest))
}

/// A directory removed when dropped unless [`TempDir::keep`] took it.
#[derive(Debug)]
pub(crate) struct TempDir(Option<PathBuf>);

impl TempDir {
    pub(crate) fn new(tmp: &Path, prefix: &str) -> Result<TempDir, Error> {
        let path = unique(tmp, prefix);
        fs::create_dir(&path).map_err(Error::io(&path))?;
        Ok(TempDir(Some(path)))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().expect("a kept TempDir is gone")
    }

    /// Moves the directory to `dest`; it is no longer removed on drop.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<(), Error> {
        let path = self.0.take().expect("persisted twice");
        match fs::rename(&path, dest) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.0 = Some(path);
                Err(Error::io(dest)(e))
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}
