//! The store's layout on disk and its records (see the crate docs).

use kinet_oci_layers::Digest;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FileLock};
use crate::reference::{self, digest_reference};
use crate::{lease, manifest, Error};

/// The image store under one directory (`$KINET_HOME/images`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One layer of an image, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// What the store knows of one image name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// The digest the name resolved to (an index's, for a multi-platform image): the
    /// `@sha256:…` of the image's digest reference.
    pub digest: String,
    /// This platform's image manifest.
    pub manifest: String,
    /// The config's digest: the image id.
    pub config: String,
    pub layers: Vec<Layer>,
}

impl Record {
    /// Bytes of the image's layers in the store's content, as pulled (what `crictl images`
    /// shows as SIZE; the small config blob is not counted).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// `registry/repository@digest`: the container's `imageID`.
    pub fn digest_reference(&self) -> String {
        match reference::normalize(&self.name) {
            Ok(r) => digest_reference(&r, &self.digest),
            Err(_) => format!("{}@{}", self.name, self.digest),
        }
    }

    /// The image id's hex, as `crictl images` shortens it (13 characters).
    pub fn short_id(&self) -> &str {
        let hex = self.config.strip_prefix("sha256:").unwrap_or(&self.config);
        &hex[..hex.len().min(13)]
    }
}

/// An image ready to run: what the runtime needs of it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The image's flattened root filesystem (read-only: containers write to an overlay).
    pub rootfs: PathBuf,
    /// Entrypoint, Cmd, Env, WorkingDir, User...
    pub config: oci_spec::image::Config,
    /// The digest reference, for `status.containerStatuses[].imageID`.
    pub image_id: String,
    /// The record the image was found by.
    pub record: Record,
}

/// A digest the store accepts: `sha256:` and 64 lowercase hex digits (anything else
/// could name a path outside `blobs/`).
fn digest_hex(digest: &str) -> Result<String, Error> {
    digest
        .parse::<Digest>()
        .map(|d| d.hex())
        .map_err(|_| Error::Manifest(format!("unsupported digest {digest:?}")))
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, Error> {
        let store = Store { root: root.into() };
        for dir in ["blobs/sha256", "names", "roots", "leases", "locks", "tmp"] {
            let path = store.root.join(dir);
            fs::create_dir_all(&path).map_err(Error::io(&path))?;
        }
        Ok(store)
    }

    /// The store every cluster under `home` (`$KINET_HOME`) shares.
    pub fn for_home(home: &Path) -> Result<Store, Error> {
        Store::open(home.join("images"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn leases(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// Where the blob `digest` lives.
    pub fn blob(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> Result<bool, Error> {
        Ok(self.blob(digest)?.is_file())
    }

    /// Stores a small blob (manifest, config), checking it against `expected` if given.
    pub(crate) fn put_blob(&self, bytes: &[u8], expected: Option<&str>) -> Result<String, Error> {
        let digest = sha256(bytes);
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(Error::Digest {
                what: "blob".into(),
                expected: expected.into(),
                actual: digest,
            });
        }
        let path = self.blob(&digest)?;
        if !path.is_file() {
            fsutil::write_atomic(&self.tmp(), &path, bytes)?;
        }
        Ok(digest)
    }

    /// Moves a file whose digest the caller checked into the blob store.
    pub(crate) fn adopt_blob(&self, file: &Path, digest: &str) -> Result<(), Error> {
        let dest = self.blob(digest)?;
        fs::rename(file, &dest).map_err(Error::io(&dest))
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob(digest)?;
        fs::read(&path).map_err(Error::io(&path))
    }

    /// The root filesystem directory of the image whose config is `config`.
    pub fn rootfs(&self, config: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("roots").join(digest_hex(config)?))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root
            .join("names")
            .join(format!("{}.json", Digest::of(name.as_bytes()).hex()))
    }

    pub(crate) fn lock(&self, key: &str, exclusive: bool) -> Result<FileLock, Error> {
        let path = self
            .root
            .join("locks")
            .join(Digest::of(key.as_bytes()).hex());
        fsutil::lock(&path, exclusive)
    }

    /// The lock every writer shares and garbage collection takes alone, so blobs a pull
    /// has written but not yet named are never collected under it.
    pub(crate) fn writer_lock(&self) -> Result<FileLock, Error> {
        self.lock("store", false)
    }

    /// The record of `image` (any form of the reference), if the store has it.
    pub fn record(&self, image: &str) -> Result<Option<Record>, Error> {
        let name = reference::store_name(&reference::normalize(image)?);
        let path = self.record_path(&name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Manifest(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    pub(crate) fn put_record(&self, record: &Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
        fsutil::write_atomic(&self.tmp(), &self.record_path(&record.name), &bytes)
    }

    /// When an image name was last added, replaced or removed: every change renames a
    /// record into `names/` or removes one, which sets the directory's mtime.
    pub fn names_changed(&self) -> Result<std::time::SystemTime, Error> {
        let dir = self.root.join("names");
        fs::metadata(&dir)
            .and_then(|m| m.modified())
            .map_err(Error::io(&dir))
    }

    /// Every image name in the store, sorted.
    pub fn list(&self) -> Result<Vec<Record>, Error> {
        let dir = self.root.join("names");
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let path = entry.map_err(Error::io(&dir))?.path();
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                // Removed since the listing: not an image any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path)(e)),
            };
            let record: Record = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Manifest(format!("{}: {e}", path.display())))?;
            records.push(record);
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// The image `image` names, ready to run, if the store has it and its root filesystem.
    pub fn resolve(&self, image: &str) -> Result<Option<Resolved>, Error> {
        match self.record(image)? {
            Some(record) => self.resolve_record(record),
            None => Ok(None),
        }
    }

    /// The image `record` describes (as a pull returns it), ready to run, if the store still
    /// has its root filesystem.
    pub fn resolve_record(&self, record: Record) -> Result<Option<Resolved>, Error> {
        let rootfs = self.rootfs(&record.config)?;
        if !rootfs.is_dir() {
            return Ok(None);
        }
        let config = manifest::parse_config(&self.read_blob(&record.config)?)?;
        Ok(Some(Resolved {
            rootfs,
            config: config.config().clone().unwrap_or_default(),
            image_id: record.digest_reference(),
            record,
        }))
    }

    /// Removes an image as `crictl rmi` does: by name (that name only) or by image id or
    /// a prefix of it (every name of that image). An image a running container uses
    /// cannot lose its last name. Returns the names removed; unused content is collected.
    pub fn remove(&self, image: &str) -> Result<Vec<String>, Error> {
        // Alone in the store from the lease check to the collection, so no container can
        // lease the image in between (leases are taken under the shared writer lock).
        let _alone = self.lock("store", true)?;
        let records = self.list()?;
        let by_name = reference::normalize(image)
            .ok()
            .map(|r| reference::store_name(&r))
            .and_then(|name| records.iter().find(|r| r.name == name));
        let doomed: Vec<&Record> = match by_name {
            Some(r) => vec![r],
            None => {
                let hex = image.strip_prefix("sha256:").unwrap_or(image);
                let ids: BTreeSet<&str> = records
                    .iter()
                    .map(|r| r.config.as_str())
                    .filter(|c| {
                        let id = c.strip_prefix("sha256:").unwrap_or(c);
                        !hex.is_empty() && id.starts_with(hex)
                    })
                    .collect();
                match ids.len() {
                    0 => return Err(Error::NotFound(image.to_string())),
                    1 => records
                        .iter()
                        .filter(|r| ids.contains(r.config.as_str()))
                        .collect(),
                    _ => {
                        return Err(Error::Manifest(format!(
                            "image id prefix {image:?} is ambiguous"
                        )))
                    }
                }
            }
        };
        let config = &doomed[0].config;
        let kept = records
            .iter()
            .filter(|r| r.config == *config && !doomed.contains(r))
            .count();
        if kept == 0 {
            let holders = lease::holders(self, config)?;
            if !holders.is_empty() {
                return Err(Error::InUse {
                    image: image.to_string(),
                    holders: holders.join(", "),
                });
            }
        }
        for r in &doomed {
            let path = self.record_path(&r.name);
            fs::remove_file(&path).map_err(Error::io(&path))?;
        }
        self.collect_garbage_alone()?;
        Ok(doomed.iter().map(|r| r.name.clone()).collect())
    }

    /// Deletes blobs and root filesystems no name refers to and no container uses.
    pub fn collect_garbage(&self) -> Result<(), Error> {
        let _alone = self.lock("store", true)?;
        self.collect_garbage_alone()
    }

    /// [`Store::collect_garbage`] with the store's lock already held alone.
    fn collect_garbage_alone(&self) -> Result<(), Error> {
        let records = self.list()?;
        let mut blobs = BTreeSet::new();
        let mut roots = BTreeSet::new();
        for r in &records {
            blobs.extend([&r.digest, &r.manifest, &r.config].map(|d| d.clone()));
            blobs.extend(r.layers.iter().map(|l| l.digest.clone()));
            roots.insert(r.config.clone());
        }
        roots.extend(lease::leased(self)?);
        let blob_dir = self.root.join("blobs/sha256");
        remove_unlisted(&blob_dir, |hex| blobs.contains(&format!("sha256:{hex}")))?;
        let root_dir = self.root.join("roots");
        remove_unlisted(&root_dir, |hex| roots.contains(&format!("sha256:{hex}")))
    }
}

fn remove_unlisted(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        if keep(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().map_err(Error::io(&path))?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(Error::io(&path))?;
    }
    Ok(())
}
