//! `kinet image load`: images from tarballs, as containerd's importer (behind `kind load
//! image-archive` and `k3s ctr images import`) reads them. An OCI layout (`oci-layout` +
//! `index.json`) wins when present; otherwise a docker-archive (`manifest.json`, as
//! `docker save` writes it), for which a Docker schema-2 manifest is made. The tar is read
//! once: every file is copied to a staging directory while it is hashed (never held in
//! memory), symlinked paths are followed inside the archive, and only the blobs the images
//! use move into the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use kinet_oci_layers::{Compression, Hasher};
use oci_spec::image::{Descriptor, ImageIndex};
use serde::Deserialize;

use crate::fsutil::TempDir;
use crate::manifest::{self, Fetched, Platform};
use crate::reference::{normalize, store_name};
use crate::{unpack, Error, Layer, Record, Store};

/// A file of the archive, copied to the staging directory.
struct Staged {
    file: PathBuf,
    digest: String,
    size: u64,
    magic: [u8; 4],
}

enum Node {
    File(Staged),
    Link(String),
}

/// The archive's files by path (relative, normalised).
struct Archive {
    path: PathBuf,
    nodes: BTreeMap<String, Node>,
    _staging: TempDir,
}

/// Copies into a file while hashing and keeping the first bytes.
struct Hashing {
    out: File,
    hasher: Hasher,
    size: u64,
    magic: [u8; 4],
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            match usize::try_from(self.size).ok().map(|s| s + i) {
                Some(at) if at < 4 => self.magic[at] = *b,
                _ => break,
            }
        }
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `a/./b/../c` → `a/c`, `..` stopping at the archive's root.
fn clean(path: &Path) -> String {
    kinet_oci_layers::clean(path).to_string_lossy().into_owned()
}

impl Archive {
    fn read(store: &Store, path: &Path) -> Result<Archive, Error> {
        let staging = TempDir::new(&store.tmp(), "import")?;
        let bad = |message: String| Error::Archive {
            path: path.to_path_buf(),
            message,
        };
        let file = BufReader::new(File::open(path).map_err(Error::io(path))?);
        let reader = kinet_oci_layers::decompress(file).map_err(Error::io(path))?;
        let mut tar = tar::Archive::new(reader);
        let mut nodes = BTreeMap::new();
        for (n, entry) in tar.entries().map_err(|e| bad(e.to_string()))?.enumerate() {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let entry_path = entry.path().map_err(|e| bad(e.to_string()))?;
            let name = clean(&entry_path);
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("{name}: a link without a target")))?;
                let target = target.to_string_lossy().into_owned();
                // A hard link's target is a path from the archive's root.
                let target = if kind.is_hard_link() {
                    format!("/{target}")
                } else {
                    target
                };
                nodes.insert(name, Node::Link(target));
            } else if kind.is_file() {
                let file = staging.path().join(n.to_string());
                let out = File::create(&file).map_err(Error::io(&file))?;
                let mut h = Hashing {
                    out,
                    hasher: Hasher::default(),
                    size: 0,
                    magic: [0; 4],
                };
                io::copy(&mut entry, &mut h).map_err(|e| bad(format!("{name}: {e}")))?;
                nodes.insert(
                    name,
                    Node::File(Staged {
                        file,
                        digest: h.hasher.finish().to_string(),
                        size: h.size,
                        magic: h.magic,
                    }),
                );
            }
        }
        Ok(Archive {
            path: path.to_path_buf(),
            nodes,
            _staging: staging,
        })
    }

    fn error(&self, message: String) -> Error {
        Error::Archive {
            path: self.path.clone(),
            message,
        }
    }

    /// The file at `name`, following symlinks inside the archive.
    fn file(&self, name: &str) -> Result<&Staged, Error> {
        let mut current = clean(Path::new(name));
        for _ in 0..32 {
            match self.nodes.get(&current) {
                Some(Node::File(f)) => return Ok(f),
                Some(Node::Link(target)) => {
                    let base = Path::new(&current).parent().unwrap_or(Path::new(""));
                    let joined = if target.starts_with('/') {
                        PathBuf::from(target)
                    } else {
                        base.join(target)
                    };
                    current = clean(&joined);
                }
                None => return Err(self.error(format!("{name}: not in the archive"))),
            }
        }
        Err(self.error(format!("{name}: too many levels of symbolic links")))
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, Error> {
        let staged = self.file(name)?;
        let bytes = std::fs::read(&staged.file).map_err(Error::io(&staged.file))?;
        serde_json::from_slice(&bytes).map_err(|e| self.error(format!("{name}: {e}")))
    }

    /// An OCI layout's blob, its content checked against its name.
    fn blob(&self, digest: &str) -> Result<&Staged, Error> {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or_else(|| Error::Manifest(format!("unsupported digest {digest:?}")))?;
        let staged = self.file(&format!("blobs/{algorithm}/{hex}"))?;
        if staged.digest != digest {
            return Err(Error::Digest {
                what: format!("blobs/{algorithm}/{hex} in {}", self.path.display()),
                expected: digest.to_string(),
                actual: staged.digest.clone(),
            });
        }
        Ok(staged)
    }
}

/// Moves a staged file into the store (once; later uses find it there).
fn keep(store: &Store, staged: &Staged) -> Result<(), Error> {
    if !store.has_blob(&staged.digest)? {
        store.adopt_blob(&staged.file, &staged.digest)?;
    }
    Ok(())
}

/// Imports every image of the tarball at `path`; returns their records.
pub fn import(store: &Store, path: &Path) -> Result<Vec<Record>, Error> {
    let _writer = store.writer_lock()?;
    let archive = Archive::read(store, path)?;
    let images = if archive.nodes.contains_key("oci-layout") {
        oci_layout(store, &archive)?
    } else if archive.nodes.contains_key("manifest.json") {
        docker_archive(store, &archive)?
    } else {
        return Err(archive.error(
            "neither a docker-archive (manifest.json) nor an OCI layout (oci-layout, index.json)"
                .into(),
        ));
    };
    if images.is_empty() {
        return Err(archive.error("no named image in the archive".into()));
    }
    for record in &images {
        store.put_record(record)?;
    }
    Ok(images)
}

/// An image's config and layers, stored and unpacked.
fn unpack_image(
    store: &Store,
    archive: &Archive,
    config: &Staged,
    layers: &[Layer],
) -> Result<(), Error> {
    keep(store, config)?;
    let config_json = store.read_blob(&config.digest)?;
    let diff_ids = manifest::parse_config(&config_json)?
        .rootfs()
        .diff_ids()
        .clone();
    unpack::ensure_root(store, &config.digest, &diff_ids, layers)
        .map(drop)
        .map_err(|e| match e {
            Error::Layer { digest, message } => archive.error(format!("layer {digest}: {message}")),
            e => e,
        })
}

/// The name an OCI layout gives an index entry: containerd's annotation, else a
/// `ref.name` that is a whole reference (a bare tag such as `1.0` names no image).
fn oci_name(d: &Descriptor) -> Option<String> {
    let annotations = d.annotations().as_ref()?;
    let name = annotations
        .get("io.containerd.image.name")
        .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
        .filter(|n| n.contains('/') || n.contains(':'))?;
    normalize(name).ok().map(|r| store_name(&r))
}

fn oci_layout(store: &Store, archive: &Archive) -> Result<Vec<Record>, Error> {
    let index: ImageIndex = archive.json("index.json")?;
    let mut records = Vec::new();
    for top in index.manifests() {
        let Some(name) = oci_name(top) else {
            tracing::warn!(digest = %top.digest(), "skipping an unnamed image of the layout");
            continue;
        };
        let digest = top.digest().to_string();
        let mut staged = archive.blob(&digest)?;
        keep(store, staged)?;
        let mut manifest_digest = digest.clone();
        let mut media_type = top.media_type().to_string();
        let image = loop {
            let body = store.read_blob(&staged.digest)?;
            match manifest::parse(&body, Some(&media_type))? {
                Fetched::Image(m) => break m,
                Fetched::Index(inner) => {
                    let entry = manifest::choose(&inner, &Platform::host()).ok_or_else(|| {
                        archive.error(format!("{name}: no manifest for this platform"))
                    })?;
                    manifest_digest = entry.digest().to_string();
                    media_type = entry.media_type().to_string();
                    staged = archive.blob(&manifest_digest)?;
                    keep(store, staged)?;
                }
                Fetched::Schema1(_) => {
                    return Err(archive.error(format!("{name}: schema 1 in an OCI layout")))
                }
            }
        };
        let mut layers = Vec::new();
        for l in image.layers() {
            let d = l.digest().to_string();
            keep(store, archive.blob(&d)?)?;
            layers.push(Layer {
                digest: d,
                size: l.size(),
                media_type: l.media_type().to_string(),
            });
        }
        let config = archive.blob(image.config().digest().as_ref())?;
        unpack_image(store, archive, config, &layers)?;
        records.push(Record {
            name,
            digest,
            manifest: manifest_digest,
            config: config.digest.clone(),
            layers,
        });
    }
    Ok(records)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive(store: &Store, archive: &Archive) -> Result<Vec<Record>, Error> {
    let entries: Vec<DockerEntry> = archive.json("manifest.json")?;
    let mut records = Vec::new();
    for entry in entries {
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            tracing::warn!(config = %entry.config, "skipping an image without RepoTags");
            continue;
        }
        let config = archive.file(&entry.config)?;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let staged = archive.file(path)?;
            keep(store, staged)?;
            let media_type = match Compression::detect(&staged.magic) {
                Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            };
            layers.push(Layer {
                digest: staged.digest.clone(),
                size: staged.size,
                media_type: media_type.into(),
            });
        }
        unpack_image(store, archive, config, &layers)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config.digest,
                "size": config.size,
            },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest_digest =
            store.put_blob(&serde_json::to_vec(&manifest).expect("json"), None)?;
        for tag in tags {
            let name = normalize(&tag).map(|r| store_name(&r))?;
            records.push(Record {
                name,
                digest: manifest_digest.clone(),
                manifest: manifest_digest.clone(),
                config: config.digest.clone(),
                layers: layers.clone(),
            });
        }
    }
    Ok(records)
}
