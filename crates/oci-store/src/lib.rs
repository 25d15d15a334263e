//! kinet's image store: the images of every cluster under `$KINET_HOME/images`.
//!
//! The store is content-addressed, as containerd's content store is:
//! - `blobs/sha256/<hex>`: manifests, configs and layers, each under the digest of its bytes;
//! - `names/<sha256 of the name>.json`: one [`Record`] per image name (a normalised
//!   reference such as `docker.io/library/busybox:latest`), written to a temporary file and
//!   renamed, so readers never see half a record;
//! - `roots/<config hex>/`: the image's root filesystem, its layers applied in order (one
//!   flattened read-only directory per image, the lower layer of its containers' overlays);
//! - `leases/`: which running containers use which image, so `rm` refuses an image in use;
//! - `locks/`: `flock` files; one per name for a pull, one per image for unpacking, and a
//!   store-wide one that pulls and imports share and garbage collection takes alone.
//!
//! Images come from registries ([`pull`], through `oci-client`) and from tarballs
//! ([`import`]: docker-archive and OCI layout). Reference normalisation, manifest and
//! platform choice, the schema-1 conversion and credentials are pure functions.

mod auth;
mod error;
mod fsutil;
pub mod import;
mod lease;
pub mod manifest;
pub mod pull;
pub mod reference;
mod store;
mod unpack;

pub use auth::Credentials;
pub use error::Error;
pub use lease::Lease;
pub use pull::{Progress, PullOptions, Settings};
pub use reference::normalize;
pub use store::{Layer, Record, Resolved, Store};
