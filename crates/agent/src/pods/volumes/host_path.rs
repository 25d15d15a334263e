//! hostPath volumes: the kubelet's type checks (`checkTypeInternal`) and messages. The one
//! volume type that reaches the host's filesystem, by design.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Checks (and for the `…OrCreate` types makes) `path` as `kind` says.
pub fn check(path: &Path, kind: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).ok();
    let is = |f: fn(&std::fs::FileType) -> bool| meta.as_ref().is_some_and(|m| f(&m.file_type()));
    let fail = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not {what}",
            path.display()
        ))
    };
    let made =
        |r: io::Result<()>| r.map_err(|e| format!("failed to create {}: {e}", path.display()));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => made(mkdir(path)),
        "Directory" | "DirectoryOrCreate" if !is(std::fs::FileType::is_dir) => fail("a directory"),
        "FileOrCreate" if meta.is_none() => made(touch(path)),
        "File" | "FileOrCreate" if !is(std::fs::FileType::is_file) => fail("a file"),
        "Socket" if !is(FileTypeExt::is_socket) => fail("a socket file"),
        "CharDevice" if !is(FileTypeExt::is_char_device) => fail("a character device"),
        "BlockDevice" if !is(FileTypeExt::is_block_device) => fail("a block device"),
        "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" | "Socket" | "CharDevice"
        | "BlockDevice" => Ok(()),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn mkdir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
}

fn touch(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_checks_say_what_kubelet_says() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let file = dir.join("f");
        std::fs::write(&file, "").unwrap();
        let null = Path::new("/dev/null");
        assert_eq!(check(&dir.join("none"), ""), Ok(()));
        assert_eq!(check(dir, "Directory"), Ok(()));
        assert_eq!(check(&file, "File"), Ok(()));
        assert_eq!(check(null, "CharDevice"), Ok(()));
        let msg = |p: &Path, what: &str| {
            Err(format!(
                "hostPath type check failed: {} is not {what}",
                p.display()
            ))
        };
        assert_eq!(check(&file, "Directory"), msg(&file, "a directory"));
        assert_eq!(
            check(&dir.join("none"), "Directory"),
            msg(&dir.join("none"), "a directory")
        );
        assert_eq!(check(dir, "FileOrCreate"), msg(dir, "a file"));
        assert_eq!(check(&file, "Socket"), msg(&file, "a socket file"));
        assert_eq!(check(&file, "CharDevice"), msg(&file, "a character device"));
        assert_eq!(check(null, "BlockDevice"), msg(null, "a block device"));
        assert_eq!(
            check(dir, "Dir"),
            Err("Dir is an invalid volume type".into())
        );

        assert_eq!(check(&dir.join("made/deep"), "DirectoryOrCreate"), Ok(()));
        assert!(dir.join("made/deep").is_dir());
        assert_eq!(check(&dir.join("new"), "FileOrCreate"), Ok(()));
        assert!(dir.join("new").is_file());
    }
}
