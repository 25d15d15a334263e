//! Paths inside a container's root, resolved as the container would: a symlink (absolute
//! or with `..`) never leads out of the root. Used to make mount points before
//! `pivot_root`, when the host's paths are still reachable.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed in one path (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// `path` inside `root`, with every symlink on the way resolved against `root`.
/// Components that do not exist yet are taken as they are.
pub fn secure_join(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    let mut pending: VecDeque<PathBuf> = components(Path::new(path));
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(std::io::Error::other(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = std::fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for (i, c) in components(&target).into_iter().enumerate() {
                    pending.insert(i, c);
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn components(p: &Path) -> VecDeque<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("run")).unwrap();
        std::fs::create_dir_all(r.join("var")).unwrap();
        symlink("/run", r.join("var/run")).unwrap();
        symlink("../../../../etc", r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let j = |p| secure_join(r, p).unwrap();
        assert_eq!(j("/var/run/secrets/x"), r.join("run/secrets/x"));
        assert_eq!(j("/escape/passwd"), r.join("etc/passwd"));
        assert_eq!(j("../../etc/hosts"), r.join("etc/hosts"));
        assert_eq!(j("/"), r.to_path_buf());
        assert!(secure_join(r, "/loop/x").is_err());
    }
}
