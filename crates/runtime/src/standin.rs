//! kinet-made root filesystems: the stand-in root of the built-in and shell images. A small
//! directory tree kinet writes itself (users, groups, name service, the host's loader
//! cache, merged-usr links), run with the host's `/usr` shown read-only as a lower layer
//! (writes go to the container's own layer) and, for built-in servers, the kinet binary at
//! [`KINET_PATH`]. Nothing else of the host is visible.

use std::hash::Hash;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::spec::{HostBind, ImageRoot};

/// Where the kinet binary appears in containers of built-in images.
pub const KINET_PATH: &str = "/kinet";

/// One entry of the stand-in root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    Dir {
        path: &'static str,
        mode: u32,
    },
    File {
        path: &'static str,
        contents: &'static str,
    },
    Symlink {
        path: &'static str,
        to: &'static str,
    },
    /// A copy of a host file (skipped if the host has none).
    HostFile {
        path: &'static str,
    },
    /// The host directory's symlinks, copied as symlinks (`/etc/alternatives`).
    HostSymlinks {
        path: &'static str,
    },
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nginx:x:101:101:nginx:/var/cache/nginx:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";

const GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
www-data:x:33:
nginx:x:101:
nogroup:x:65534:
";

const NSSWITCH: &str = "passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
";

const OS_RELEASE: &str = "PRETTY_NAME=\"kinet stand-in image (host tools, read-only)\"
NAME=\"kinet stand-in\"
ID=kinet
";

/// The stand-in root, in creation order.
pub fn plan() -> Vec<Entry> {
    use Entry::*;
    let mut v = vec![
        Dir {
            path: "usr",
            mode: 0o755,
        },
        Symlink {
            path: "bin",
            to: "usr/bin",
        },
        Symlink {
            path: "sbin",
            to: "usr/sbin",
        },
        Symlink {
            path: "lib",
            to: "usr/lib",
        },
        Symlink {
            path: "lib64",
            to: "usr/lib64",
        },
        Dir {
            path: "etc",
            mode: 0o755,
        },
        File {
            path: "etc/passwd",
            contents: PASSWD,
        },
        File {
            path: "etc/group",
            contents: GROUP,
        },
        File {
            path: "etc/nsswitch.conf",
            contents: NSSWITCH,
        },
        File {
            path: "etc/os-release",
            contents: OS_RELEASE,
        },
        // Written over by the pod's own files at run time.
        File {
            path: "etc/hosts",
            contents: "",
        },
        File {
            path: "etc/resolv.conf",
            contents: "",
        },
        File {
            path: "etc/hostname",
            contents: "",
        },
        HostFile {
            path: "etc/ld.so.cache",
        },
        HostFile {
            path: "etc/protocols",
        },
        HostFile {
            path: "etc/services",
        },
        HostSymlinks {
            path: "etc/alternatives",
        },
        Dir {
            path: "root",
            mode: 0o700,
        },
        Dir {
            path: "tmp",
            mode: 0o1777,
        },
        Dir {
            path: "run",
            mode: 0o755,
        },
        Dir {
            path: "var",
            mode: 0o755,
        },
        Dir {
            path: "var/tmp",
            mode: 0o1777,
        },
        Dir {
            path: "var/log",
            mode: 0o755,
        },
        Symlink {
            path: "var/run",
            to: "../run",
        },
        Dir {
            path: "home",
            mode: 0o755,
        },
    ];
    v.extend(["proc", "sys", "dev", "mnt", "opt", "srv"].map(|path| Dir { path, mode: 0o755 }));
    v
}

/// The host binds of a kinet-made image: `/usr`, and the kinet binary for built-in servers.
pub fn host_binds(kinet_exe: Option<&Path>) -> Vec<HostBind> {
    let mut binds = vec![HostBind {
        source: "/usr".into(),
        target: "/usr".into(),
    }];
    if let Some(exe) = kinet_exe {
        binds.push(HostBind {
            source: exe.to_path_buf(),
            target: KINET_PATH.into(),
        });
    }
    binds
}

fn make(root: &Path, e: &Entry) -> std::io::Result<()> {
    match e {
        Entry::Dir { path, mode } => {
            let p = root.join(path);
            std::fs::create_dir_all(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
        }
        Entry::File { path, contents } => std::fs::write(root.join(path), contents),
        Entry::Symlink { path, to } => symlink(to, root.join(path)),
        Entry::HostFile { path } => match std::fs::copy(Path::new("/").join(path), root.join(path))
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        },
        Entry::HostSymlinks { path } => {
            let into = root.join(path);
            std::fs::create_dir_all(&into)?;
            let Ok(dir) = std::fs::read_dir(Path::new("/").join(path)) else {
                return Ok(());
            };
            for link in dir.flatten() {
                if let Ok(to) = std::fs::read_link(link.path()) {
                    symlink(to, into.join(link.file_name()))?;
                }
            }
            Ok(())
        }
    }
}

/// The stand-in root under `images_dir` (made once per plan, shared by every cluster and
/// container; containers only ever see it through an overlay).
pub fn materialize(images_dir: &Path, kinet_exe: Option<&Path>) -> std::io::Result<ImageRoot> {
    let entries = plan();
    // A hash stable across toolchains (DefaultHasher's is not), so the root is made once.
    let hash = kinet_types::hash::fnv1a_64(format!("{entries:?}"));
    let dir = images_dir.join(format!("kinet-standin-{:012x}", hash & 0xffff_ffff_ffff));
    let rootfs = dir.join("rootfs");
    if !rootfs.is_dir() {
        build(&dir, &entries)?;
    }
    Ok(ImageRoot {
        rootfs,
        host_binds: host_binds(kinet_exe),
    })
}

/// Builds in a private directory, then renames: another builder (agent or thread) at the
/// same time either wins or finds the finished root.
fn build(dir: &Path, entries: &[Entry]) -> std::io::Result<()> {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    std::fs::create_dir_all(dir)?;
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!("rootfs.tmp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    for e in entries {
        make(&tmp, e)?;
    }
    match std::fs::rename(&tmp, dir.join("rootfs")) {
        Ok(()) => Ok(()),
        Err(_) if dir.join("rootfs").is_dir() => std::fs::remove_dir_all(&tmp),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_users_merged_usr_and_sticky_tmp() {
        let p = plan();
        assert!(p.contains(&Entry::Symlink {
            path: "bin",
            to: "usr/bin"
        }));
        assert!(p.contains(&Entry::Dir {
            path: "tmp",
            mode: 0o1777
        }));
        assert!(p.iter().any(|e| matches!(e, Entry::File { path: "etc/passwd", contents } if contents.starts_with("root:x:0:0:"))));
        // Parents come before their children.
        let pos = |x: &str| {
            p.iter()
                .position(|e| matches!(e, Entry::Dir { path, .. } if *path == x))
        };
        assert!(pos("var") < pos("var/tmp"));
    }

    #[test]
    fn materialize_builds_once_and_binds_only_usr_and_kinet() {
        let dir = tempfile::tempdir().unwrap();
        let img = materialize(dir.path(), Some(Path::new("/bin/kinet"))).unwrap();
        let root = &img.rootfs;
        assert_eq!(
            std::fs::read_link(root.join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert!(std::fs::read_to_string(root.join("etc/group"))
            .unwrap()
            .contains("nogroup"));
        let mode = std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
        assert!(!root.join("work").exists() && !root.join("home/root").exists());
        let targets: Vec<&str> = img.host_binds.iter().map(|b| b.target.as_str()).collect();
        assert_eq!(targets, ["/usr", KINET_PATH]);
        // A second call reuses it.
        std::fs::write(root.join("marker"), "").unwrap();
        let again = materialize(dir.path(), None).unwrap();
        assert!(again.rootfs.join("marker").exists());
        assert_eq!(again.host_binds.len(), 1);
    }

    #[test]
    fn concurrent_builds_end_with_one_whole_root() {
        let dir = tempfile::tempdir().unwrap();
        let roots: Vec<ImageRoot> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| materialize(dir.path(), None).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in roots {
            assert!(r.rootfs.join("etc/passwd").is_file());
            assert!(r.rootfs.join("etc/nsswitch.conf").is_file());
        }
    }
}
