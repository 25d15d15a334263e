//! Container images made by tests: layers written in memory with `tar`, gzip-compressed,
//! described by an OCI config and manifest, and served by [`crate::registry`] or written
//! as the tarballs `kinet image load` reads (OCI layout and docker-archive).

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// This machine's architecture as image platforms name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// One layer's tar stream, entry by entry.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
        }
    }
}

impl LayerBuilder {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .expect("tar in memory");
        self
    }

    pub fn file(mut self, path: &str, content: &[u8], mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        self.tar
            .append_data(&mut h, path, content)
            .expect("tar in memory");
        self
    }

    /// A copy of a host file (e.g. `/bin/busybox`).
    pub fn host_file(self, path: &str, host: &Path, mode: u32) -> Self {
        let content = std::fs::read(host).unwrap_or_else(|e| panic!("{}: {e}", host.display()));
        self.file(path, &content, mode)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("tar in memory");
        self
    }

    /// The uncompressed tar stream.
    pub fn build(self) -> Vec<u8> {
        self.tar.into_inner().expect("tar in memory")
    }
}

/// Content and its descriptor fields.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: digest(&bytes),
            bytes,
        }
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// An image: config, gzip-compressed layers and the OCI manifest naming them.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The layers uncompressed (a docker-archive carries them so).
    pub plain_layers: Vec<Vec<u8>>,
    pub manifest: Blob,
}

impl Image {
    /// An image of `layers` (uncompressed tars) whose process config (`Entrypoint`, `Cmd`,
    /// `Env`...) is `process`, for this machine's platform.
    pub fn new(layers: Vec<Vec<u8>>, process: Value) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let config = json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": process,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).expect("json"));
        let compressed: Vec<Blob> = layers
            .iter()
            .map(|plain| {
                let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(plain).expect("gzip in memory");
                Blob::new(OCI_LAYER_GZIP, gz.finish().expect("gzip in memory"))
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": compressed.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        Image {
            manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).expect("json")),
            config,
            layers: compressed,
            plain_layers: layers,
        }
    }

    /// A busybox image from the host's static `/bin/busybox` (package busybox-static):
    /// `/bin/<applet>` links, `/etc/passwd`, a page at `/www/index.html` saying `page`,
    /// and `process` as its config.
    pub fn busybox(page: &str, process: Value) -> Image {
        let mut layer = LayerBuilder::default();
        for dir in ["bin", "etc", "www", "tmp", "proc", "sys", "dev", "root"] {
            layer = layer.dir(dir, if dir == "tmp" { 0o1777 } else { 0o755 });
        }
        layer = layer.host_file("bin/busybox", Path::new("/bin/busybox"), 0o755);
        for applet in [
            "sh", "ls", "cat", "echo", "httpd", "wget", "ps", "touch", "sleep", "hostname", "id",
        ] {
            layer = layer.symlink(&format!("bin/{applet}"), "busybox");
        }
        let layer = layer
            .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
            .file("etc/group", b"root:x:0:\n", 0o644)
            .file("www/index.html", format!("{page}\n").as_bytes(), 0o644)
            .build();
        Image::new(vec![layer], process)
    }

    /// Every blob a registry serves for this image.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// An OCI layout tarball naming the image `name` (containerd's annotation and
    /// `ref.name`, as `ctr export` writes them).
    pub fn oci_layout_tar(&self, name: &str) -> Vec<u8> {
        let mut index_entry = self.manifest.descriptor();
        index_entry["annotations"] = json!({
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or("latest", |(_, t)| t),
        });
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [index_entry]});
        let mut tar = LayerBuilder::default()
            .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
            .file(
                "index.json",
                &serde_json::to_vec(&index).expect("json"),
                0o644,
            )
            .dir("blobs", 0o755)
            .dir("blobs/sha256", 0o755);
        for blob in self.blobs().chain([&self.manifest]) {
            tar = tar.file(
                &format!("blobs/sha256/{}", &blob.digest[7..]),
                &blob.bytes,
                0o644,
            );
        }
        tar.build()
    }

    /// A docker-archive tarball (`docker save`) tagged `tag`: uncompressed layers under
    /// `blobs/sha256/`, reached through `<id>/layer.tar` symlinks as Docker 25 writes them.
    pub fn docker_archive_tar(&self, tag: &str) -> Vec<u8> {
        let config_path = format!("{}.json", &self.config.digest[7..]);
        let mut tar = LayerBuilder::default()
            .file(&config_path, &self.config.bytes, 0o644)
            .dir("blobs", 0o755)
            .dir("blobs/sha256", 0o755);
        let mut layer_paths = Vec::new();
        for plain in &self.plain_layers {
            let hex = &digest(plain)[7..];
            tar = tar
                .file(&format!("blobs/sha256/{hex}"), plain, 0o644)
                .dir(hex, 0o755)
                .symlink(
                    &format!("{hex}/layer.tar"),
                    &format!("../blobs/sha256/{hex}"),
                );
            layer_paths.push(format!("{hex}/layer.tar"));
        }
        let manifest = json!([{"Config": config_path, "RepoTags": [tag], "Layers": layer_paths}]);
        tar.file(
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("json"),
            0o644,
        )
        .build()
    }
}
