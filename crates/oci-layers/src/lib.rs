//! Applies OCI image layers onto a root directory, the way the image spec's
//! "Applying Changesets" section says, without ever writing outside that root.
//!
//! Every entry's parent is resolved with `openat2(RESOLVE_IN_ROOT)`, so `..`, absolute
//! paths and symlinks (absolute ones included, like Debian's `/var/run -> /run`) all stay
//! inside the root. The last component is never followed: it is created with `*at` calls.
//! Layers are streamed; only paths (never file contents) are kept in memory.

mod compression;
mod digest;
mod error;
mod paths;
mod read_ahead;
mod root;
mod unpack;

pub use compression::{decompress, Compression};
pub use digest::{Digest, Hasher, ParseDigestError};
pub use error::Error;
pub use paths::clean;

use std::path::Path;

/// Applies one image layer (a tar stream, plain or compressed with gzip or zstd, detected
/// by its magic bytes) onto the directory `root`, and returns the layer's `diff_id`: the
/// sha256 of the uncompressed tar stream.
///
/// Ownership is kept (numeric ids) when running as root, as `tar` does; otherwise files
/// belong to the caller. Decompression and hashing run on a second thread, ahead of the
/// filesystem work.
pub fn apply(root: &Path, layer: impl std::io::Read + Send) -> Result<Digest, Error> {
    let root = root::Root::open(root)?;
    std::thread::scope(|scope| {
        let (tx, rx) = read_ahead::channel();
        let producer = scope.spawn(move || -> std::io::Result<Digest> {
            let mut stream = digest::Hashing::new(compression::decompress(layer)?);
            read_ahead::produce(&mut stream, tx);
            Ok(stream.finish())
        });
        let mut chunks = read_ahead::Chunks::new(rx);
        let unpacked = unpack::Unpacker::new(&root).run(&mut chunks);
        // The diff_id covers the whole stream, including padding after the end-of-archive
        // blocks; a failed unpack stops the producer by dropping the channel instead.
        let drained = match unpacked {
            Ok(()) => std::io::copy(&mut chunks, &mut std::io::sink()).map_err(Error::Read),
            Err(e) => Err(e),
        };
        drop(chunks);
        let digest = producer.join().expect("the layer reader panicked");
        drained?;
        digest.map_err(Error::Read)
    })
}
