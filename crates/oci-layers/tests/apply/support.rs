//! Layers built byte by byte, so tests can craft the entries a hostile image would carry
//! (`..`, absolute names, links out of the root) that `tar::Builder` refuses to write.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> Layer {
        self.entry(EntryType::Regular, path, "", mode, data)
    }

    pub fn dir(self, path: &str, mode: u32) -> Layer {
        self.entry(EntryType::Directory, path, "", mode, b"")
    }

    pub fn symlink(self, path: &str, target: &str) -> Layer {
        self.entry(EntryType::Symlink, path, target, 0o777, b"")
    }

    pub fn hardlink(self, path: &str, target: &str) -> Layer {
        self.entry(EntryType::Link, path, target, 0o644, b"")
    }

    pub fn entry(self, kind: EntryType, path: &str, link: &str, mode: u32, data: &[u8]) -> Layer {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(data.len() as u64);
        self.raw(header, path, link, data)
    }

    /// Appends `header` with `path` and `link` written verbatim (no checks) into it.
    pub fn raw(mut self, mut header: Header, path: &str, link: &str, data: &[u8]) -> Layer {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// Appends an entry with pax records (for xattrs).
    pub fn with_pax(
        mut self,
        records: &[(&str, &[u8])],
        header: Header,
        path: &str,
        data: &[u8],
    ) -> Layer {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self.raw(header, path, "", data)
    }

    pub fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A root directory to apply layers to, beside an `outside` directory holding one file,
/// which no layer may change.
pub struct Scene {
    pub dir: tempfile::TempDir,
}

impl Scene {
    pub fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/keep"), "untouched").unwrap();
        Scene { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    pub fn at(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn apply(
        &self,
        layer: Vec<u8>,
    ) -> Result<kinet_oci_layers::Digest, kinet_oci_layers::Error> {
        kinet_oci_layers::apply(&self.root(), &layer[..])
    }

    /// Panics unless `outside` holds only its untouched file.
    pub fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep"], "a layer wrote outside the root");
        let keep = self.outside().join("keep");
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "untouched");
        assert_eq!(
            std::fs::metadata(&keep).unwrap().nlink(),
            1,
            "hardlinked from inside"
        );
    }

    /// Every path below the root, sorted, directories with a trailing `/`.
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root(), Path::new(""), &mut out);
        out.sort();
        out
    }
}

fn walk(base: &Path, rel: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(base.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let rel = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            out.push(format!("{}/", rel.display()));
            walk(base, &rel, out);
        } else {
            out.push(rel.display().to_string());
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
