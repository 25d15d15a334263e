//! Entry names as the image spec reads them: cleaned lexically below the root, and
//! classified as whiteouts, opaque markers or ordinary entries.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): never part of the filesystem.
const AUFS_META: &[u8] = b".wh..wh.";

/// `path` made relative to the root: `/`, `.` and empty parts dropped and `..` applied
/// lexically, stopping at the root (as `filepath.Clean("/" + name)` in containerd).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// What a (cleaned) entry path asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    /// The root itself (`./`): nothing to create.
    Root,
    /// Create `name` in `parent`.
    Create { parent: &'a Path, name: &'a OsStr },
    /// Delete `name` in `parent` from the layers below (`.wh.<name>`).
    Whiteout { parent: &'a Path, name: OsString },
    /// Hide every lower-layer child of `dir` (`.wh..wh..opq`).
    Opaque { dir: &'a Path },
    /// aufs metadata (and what is inside it), skipped as Docker does.
    Ignore,
}

pub(crate) fn classify(path: &Path) -> Action<'_> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Action::Root;
    };
    let bytes = name.as_bytes();
    let in_aufs_meta = parent
        .components()
        .any(|c| c.as_os_str().as_bytes().starts_with(AUFS_META));
    if in_aufs_meta {
        Action::Ignore
    } else if bytes == OPAQUE {
        Action::Opaque { dir: parent }
    } else if bytes.starts_with(AUFS_META) {
        Action::Ignore
    } else if let Some(hidden) = bytes.strip_prefix(WHITEOUT) {
        if hidden.is_empty() {
            return Action::Ignore;
        }
        Action::Whiteout {
            parent,
            name: OsStr::from_bytes(hidden).to_os_string(),
        }
    } else {
        Action::Create { parent, name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_keeps_every_path_below_the_root() {
        for (raw, want) in [
            ("etc/passwd", "etc/passwd"),
            ("./etc//passwd", "etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("../../etc/x", "etc/x"),
            ("a/b/../../../c", "c"),
            ("a/./b/", "a/b"),
            ("./", ""),
            ("..", ""),
        ] {
            assert_eq!(clean(Path::new(raw)), Path::new(want), "{raw}");
        }
    }

    #[test]
    fn classify_reads_whiteouts_and_opaque_markers() {
        let p = |s| PathBuf::from(s);
        assert_eq!(classify(&p("")), Action::Root);
        assert_eq!(
            classify(&p("etc/hosts")),
            Action::Create {
                parent: Path::new("etc"),
                name: OsStr::new("hosts")
            }
        );
        assert_eq!(
            classify(&p("etc/.wh.hosts")),
            Action::Whiteout {
                parent: Path::new("etc"),
                name: "hosts".into()
            }
        );
        assert_eq!(
            classify(&p(".wh.tmp")),
            Action::Whiteout {
                parent: Path::new(""),
                name: "tmp".into()
            }
        );
        assert_eq!(
            classify(&p("var/.wh..wh..opq")),
            Action::Opaque {
                dir: Path::new("var")
            }
        );
        assert_eq!(classify(&p(".wh..wh.plnk/1.2")), Action::Ignore);
        assert_eq!(classify(&p("x/.wh..wh.aufs")), Action::Ignore);
        assert_eq!(classify(&p("x/.wh.")), Action::Ignore);
    }
}
