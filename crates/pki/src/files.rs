//! Saving and loading the PKI as PEM files in one directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{Pki, PkiError};

/// The files `Pki::save` writes, in the order of the struct's fields.
pub const FILE_NAMES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
];

impl Pki {
    /// Writes the six PEM files into `dir` (created if missing); keys get mode 0600.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
        for (name, pem) in FILE_NAMES.iter().zip(self.pems()) {
            let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
            let path = dir.join(name);
            write_file(&path, pem, mode).map_err(|source| io(&path, source))?;
        }
        Ok(())
    }

    /// Reads what `save` wrote.
    pub fn load(dir: &Path) -> Result<Pki, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| io(&path, source))
        };
        Ok(Pki {
            ca_cert_pem: read(FILE_NAMES[0])?,
            ca_key_pem: read(FILE_NAMES[1])?,
            server_cert_pem: read(FILE_NAMES[2])?,
            server_key_pem: read(FILE_NAMES[3])?,
            admin_cert_pem: read(FILE_NAMES[4])?,
            admin_key_pem: read(FILE_NAMES[5])?,
        })
    }

    fn pems(&self) -> [&str; 6] {
        [
            &self.ca_cert_pem,
            &self.ca_key_pem,
            &self.server_cert_pem,
            &self.server_key_pem,
            &self.admin_cert_pem,
            &self.admin_key_pem,
        ]
    }
}

/// Writes `contents` with `mode`, also tightening the mode of a file that already existed
/// (`OpenOptions::mode` only applies on creation). Keys, tokens and kubeconfigs all go
/// through here.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents.as_bytes())
}

fn io(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate("rt", &["127.0.0.1".to_string()]).unwrap();
        let sub = dir.path().join("pki");
        pki.save(&sub).unwrap();
        let loaded = Pki::load(&sub).unwrap();
        assert_eq!(loaded.pems(), pki.pems());
        for name in FILE_NAMES {
            let mode = fs::metadata(sub.join(name)).unwrap().permissions().mode() & 0o777;
            let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
            assert_eq!(mode, want, "{name}");
        }
    }

    #[test]
    fn load_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Pki::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn save_tightens_an_existing_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ca.key");
        fs::write(&key, "old").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        Pki::generate("t", &[]).unwrap().save(dir.path()).unwrap();
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
    }
}
