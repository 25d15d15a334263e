//! Paths inside a container's root, resolved as the container would: a symlink (absolute
//! or with `..`) never leads out of the root. Used to make mount points before
//! `pivot_root`, when the host's paths are still reachable.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::spec::ImageRoot;

/// Most symlinks followed in one path (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// `path` inside `root`, with every symlink on the way resolved against `root`.
/// Components that do not exist yet are taken as they are.
pub fn secure_join(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    resolve(path, |p| root.join(p))
}

/// Where `path` of a container of `image` is on the host, before anything is mounted:
/// inside a host bind's source for paths under its target, else inside the image's root.
pub fn image_path(image: &ImageRoot, path: &str) -> std::io::Result<PathBuf> {
    resolve(path, |p| {
        image
            .host_binds
            .iter()
            .filter_map(|b| Some((b, p.strip_prefix(b.target.trim_start_matches('/')).ok()?)))
            .max_by_key(|(b, _)| b.target.len())
            // Joining an empty rest would add a slash, which a file does not take.
            .map(|(b, rest)| match rest.as_os_str().is_empty() {
                true => b.source.clone(),
                false => b.source.join(rest),
            })
            .unwrap_or_else(|| image.rootfs.join(p))
    })
}

/// Whether `program` is an executable file a container of `image` finds on `path_env`
/// (execvp's search), so a missing one is a start error as containerd reports it.
pub fn finds_program(image: &ImageRoot, path_env: &str, program: &str) -> bool {
    search_path(program, path_env, |p| image_path(image, p)).is_some()
}

/// Where execvp finds `program` on `path_env`, `host` giving each container path's host
/// path (the identity once the container's root is `/`).
pub fn search_path(
    program: &str,
    path_env: &str,
    host: impl Fn(&str) -> std::io::Result<PathBuf>,
) -> Option<PathBuf> {
    let executable = |p: &str| {
        host(p)
            .ok()
            .filter(|h| {
                std::fs::metadata(h)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|_| PathBuf::from(p))
    };
    if program.contains('/') {
        return executable(program);
    }
    path_env
        .split(':')
        .find_map(|d| executable(&format!("{}/{program}", d.trim_end_matches('/'))))
}

/// `path` resolved component by component, `host` giving each container path's host path.
fn resolve(path: &str, host: impl Fn(&Path) -> PathBuf) -> std::io::Result<PathBuf> {
    let mut pending: VecDeque<PathBuf> = components(Path::new(path));
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = host(&candidate);
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
    Ok(host(&resolved))
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
    use crate::spec::HostBind;
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

    #[test]
    fn programs_are_found_through_host_binds_and_merged_usr_links() {
        let root = tempfile::tempdir().unwrap();
        let host_usr = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host_usr.path().join("bin")).unwrap();
        let sh = host_usr.path().join("bin/sh");
        std::fs::write(&sh, "").unwrap();
        std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(host_usr.path().join("bin/data"), "").unwrap();
        std::fs::create_dir_all(root.path().join("usr")).unwrap();
        symlink("usr/bin", root.path().join("bin")).unwrap();
        let image = ImageRoot {
            rootfs: root.path().to_path_buf(),
            host_binds: vec![HostBind {
                source: host_usr.path().to_path_buf(),
                target: "/usr".into(),
            }],
        };
        assert_eq!(image_path(&image, "/bin/sh").unwrap(), sh);
        assert!(finds_program(&image, "/usr/local/bin:/bin", "sh"));
        assert!(finds_program(&image, "", "/usr/bin/sh"));
        assert!(!finds_program(&image, "/bin", "data"));
        assert!(!finds_program(&image, "/usr/local/bin", "sh"));
        let mut kinet = image.clone();
        kinet.host_binds.push(HostBind {
            source: sh.clone(),
            target: "/kinet".into(),
        });
        assert!(finds_program(&kinet, "", "/kinet"));
    }
}
