//! The kubelet's `AtomicWriter`: a volume's files live in a timestamped directory, `..data`
//! points at it, and each top-level name is a symlink through `..data`. An update writes a
//! new directory and renames a new `..data` over the old one, so a reader sees the old
//! files or the new ones, never a mix.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::payload::{File, Payload};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Writes `payload` into `dir` (created if needed). Returns false when the files were
/// already exactly these, and nothing changed.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        check(path)?;
    }
    std::fs::create_dir_all(dir)?;
    let old = std::fs::read_link(dir.join(DATA)).ok();
    if let Some(old) = &old {
        if read(&dir.join(old)).ok().as_ref() == Some(payload) {
            return Ok(false);
        }
    }
    let stamp = new_stamp_dir(dir)?;
    for (path, file) in payload {
        let target = dir.join(&stamp).join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;

    let wanted: std::collections::BTreeSet<String> = payload.keys().map(|p| top(p)).collect();
    for name in &wanted {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(name), link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !wanted.contains(&name) {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

/// Payload paths are relative, without `..`, and never start with `..` (kubelet's
/// `validatePath`): the writer's own names begin with `..`.
fn check(path: &str) -> io::Result<()> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path {path:?} in volume"),
        ))
    }
}

fn top(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_string()
}

/// A new `..<UTC time>.<n>` directory, as the kubelet's `MkdirTemp("..2006_01_02_15_04_05.")`.
fn new_stamp_dir(dir: &Path) -> io::Result<String> {
    let now = chrono::Utc::now();
    let prefix = format!(
        "{}{:09}",
        now.format("..%Y_%m_%d_%H_%M_%S."),
        now.timestamp_subsec_nanos()
    );
    let mut n = 0u32;
    loop {
        let name = format!("{prefix}{n}");
        match std::fs::create_dir(dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The files under a timestamped directory, to compare with a new payload.
fn read(stamp: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut dirs = vec![stamp.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(stamp)
                .map(|p| p.to_string_lossy().into_owned());
            let rel = rel.map_err(|_| io::ErrorKind::InvalidData)?;
            let data = std::fs::read(entry.path())?;
            out.insert(
                rel,
                File {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    File {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn writes_through_data_link_and_swaps_on_update() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]);
        assert!(write(&dir, &first).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let stamp = std::fs::read_link(dir.join(DATA)).unwrap();
        assert!(stamp.to_string_lossy().starts_with("..20"), "{stamp:?}");

        // Same files: nothing written.
        assert!(!write(&dir, &first).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), stamp);

        let second = payload(&[("a", "changed", 0o644), ("c", "3", 0o644)]);
        assert!(write(&dir, &second).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "changed");
        assert!(
            dir.join("sub").symlink_metadata().is_err(),
            "removed key stays"
        );
        assert!(!dir.join(&stamp).exists(), "old timestamp dir stays");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("..2"))
            .collect();
        names.sort();
        assert_eq!(names, ["..data", "a", "c"]);
    }

    #[test]
    fn refuses_paths_that_leave_the_volume_or_clash_with_its_own_names() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", "..data", ""] {
            let err = write(&tmp.path().join("v"), &payload(&[(bad, "x", 0o644)])).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
