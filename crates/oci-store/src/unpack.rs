//! From layer blobs to an image's root filesystem: layers applied in order by
//! `kinet-oci-layers` into a temporary directory, diff_ids checked against the config,
//! then one rename into `roots/`, under a per-image lock so concurrent pulls unpack once.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use crate::fsutil::{FileLock, TempDir};
use crate::{Error, Layer, Store};

/// Applies `layers` to a fresh temporary directory; returns it and the layers' diff_ids.
pub(crate) fn unpack(store: &Store, layers: &[Layer]) -> Result<(TempDir, Vec<String>), Error> {
    let root = TempDir::new(&store.tmp(), "root")?;
    let mut diff_ids = Vec::with_capacity(layers.len());
    for layer in layers {
        let path = store.blob(&layer.digest)?;
        let file = File::open(&path).map_err(Error::io(&path))?;
        let diff_id = kinet_oci_layers::apply(root.path(), BufReader::with_capacity(1 << 20, file))
            .map_err(|e| Error::Layer {
                digest: layer.digest.clone(),
                message: e.to_string(),
            })?;
        diff_ids.push(diff_id.to_string());
    }
    Ok((root, diff_ids))
}

/// Moves an unpacked root into place as the root of image `config`, unless another
/// writer got there first (then `root` is dropped, and removed).
pub(crate) fn install(store: &Store, config: &str, root: TempDir) -> Result<PathBuf, Error> {
    let dest = store.rootfs(config)?;
    let _lock = root_lock(store, config)?;
    if !dest.is_dir() {
        root.persist(&dest)?;
    }
    Ok(dest)
}

/// Makes sure image `config` has its root filesystem, its layers' diff_ids being
/// `diff_ids` (from the image config).
pub(crate) fn ensure_root(
    store: &Store,
    config: &str,
    diff_ids: &[String],
    layers: &[Layer],
) -> Result<PathBuf, Error> {
    let dest = store.rootfs(config)?;
    let _lock = root_lock(store, config)?;
    if dest.is_dir() {
        return Ok(dest);
    }
    if diff_ids.len() != layers.len() {
        return Err(Error::Manifest(format!(
            "the config lists {} diff_ids for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    let (root, actual) = unpack(store, layers)?;
    for ((layer, expected), actual) in layers.iter().zip(diff_ids).zip(actual) {
        if *expected != actual {
            return Err(Error::Digest {
                what: format!("the uncompressed layer {}", layer.digest),
                expected: expected.clone(),
                actual,
            });
        }
    }
    root.persist(&dest)?;
    Ok(dest)
}

/// Held while image `config`'s root is checked for and put in place.
fn root_lock(store: &Store, config: &str) -> Result<FileLock, Error> {
    store.lock(&format!("root {config}"), true)
}
