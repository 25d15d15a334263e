//! Which containers use which image. A lease names its holder and the PID that keeps it
//! alive (the pod's sandbox process); a lease whose PID is gone is stale and ignored, so
//! an agent that died cannot pin an image forever.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{fsutil, Error, Store};

/// One container's use of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it, e.g. `<cluster>/<pod uid>/<container>`.
    pub holder: String,
    /// The image's config digest.
    pub image: String,
    /// While this process lives the lease holds.
    pub pid: u32,
}

fn path(store: &Store, holder: &str) -> PathBuf {
    let file: String = holder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    store.leases().join(format!("{file}.json"))
}

fn alive(pid: u32) -> bool {
    pid != 0 && PathBuf::from(format!("/proc/{pid}")).exists()
}

impl Store {
    /// Records that `lease.holder` uses `lease.image` (replacing its earlier lease). Refused
    /// once the image's root filesystem is gone: a removal got there first.
    pub fn lease(&self, lease: &Lease) -> Result<(), Error> {
        // Never between a removal's lease check and its collection, which hold it alone.
        let _writer = self.writer_lock()?;
        if !self.rootfs(&lease.image)?.is_dir() {
            return Err(Error::NotFound(lease.image.clone()));
        }
        let bytes = serde_json::to_vec(lease).expect("leases serialize");
        fsutil::write_atomic(&self.tmp(), &path(self, &lease.holder), &bytes)
    }

    /// Ends `holder`'s lease, if it has one.
    pub fn release(&self, holder: &str) -> Result<(), Error> {
        let p = path(self, holder);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p)(e)),
            _ => Ok(()),
        }
    }
}

fn live(store: &Store) -> Result<Vec<Lease>, Error> {
    let dir = store.leases();
    let mut leases = Vec::new();
    for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
        let p = entry.map_err(Error::io(&dir))?.path();
        let Ok(bytes) = fs::read(&p) else { continue };
        match serde_json::from_slice::<Lease>(&bytes) {
            Ok(l) if alive(l.pid) => leases.push(l),
            // Stale or unreadable: its holder is gone.
            _ => {
                let _ = fs::remove_file(&p);
            }
        }
    }
    Ok(leases)
}

/// The live holders of `image`'s leases.
pub(crate) fn holders(store: &Store, image: &str) -> Result<Vec<String>, Error> {
    Ok(live(store)?
        .into_iter()
        .filter(|l| l.image == image)
        .map(|l| l.holder)
        .collect())
}

/// Every image some live lease holds.
pub(crate) fn leased(store: &Store) -> Result<Vec<String>, Error> {
    Ok(live(store)?.into_iter().map(|l| l.image).collect())
}
