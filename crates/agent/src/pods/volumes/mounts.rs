//! Which volume goes where in a container: its `volumeMounts` as bind mounts, with
//! `subPath`/`subPathExpr` resolved inside the volume and never out of it.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, VolumeMount};
use rustix::fs::{openat, openat2, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use kinet_runtime::BindMount;

use crate::pods::env::expand;

/// A volume ready to mount: its directory (or host path) and whether the kubelet forces
/// it read-only (API data: configMap, secret, downwardAPI, projected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mountable {
    pub path: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("volume {0:?} not found")]
    NoVolume(String),
    #[error("subPath {0:?} must be a relative path without '..'")]
    BadSubPath(String),
    #[error("subpath {sub_path:?} not within volume path {volume:?}")]
    Escapes { sub_path: String, volume: PathBuf },
    #[error("subPath {sub_path:?}: {source}")]
    Io {
        sub_path: String,
        #[source]
        source: io::Error,
    },
}

/// The bind mounts of `container`. `volume` finds a volume by name; `env` is the
/// container's environment, which `subPathExpr` expands.
pub fn container_mounts(
    container: &Container,
    env: &[(String, String)],
    volume: impl Fn(&str) -> Option<Mountable>,
) -> Result<Vec<BindMount>, MountError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let vol = volume(&m.name).ok_or_else(|| MountError::NoVolume(m.name.clone()))?;
        let source = match sub_path(m, env)? {
            Some(sub) => resolve_sub_path(&vol.path, &sub)?,
            None => vol.path,
        };
        out.push(BindMount {
            source,
            target: m.mount_path.clone(),
            read_only: vol.read_only || m.read_only == Some(true),
        });
    }
    Ok(out)
}

/// `subPath`, or `subPathExpr` expanded; checked relative and free of `..`.
fn sub_path(m: &VolumeMount, env: &[(String, String)]) -> Result<Option<String>, MountError> {
    let sub = match (&m.sub_path, &m.sub_path_expr) {
        (Some(s), _) if !s.is_empty() => s.clone(),
        (_, Some(e)) if !e.is_empty() => expand(e, env),
        _ => return Ok(None),
    };
    let ok = Path::new(&sub)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(MountError::BadSubPath(sub));
    }
    Ok(Some(sub))
}

/// The real path of `sub` inside `volume`, made as a directory if missing (as the kubelet
/// does). Symlinks are followed only while they stay inside the volume
/// (`RESOLVE_BENEATH`); one that leads out is an error.
pub fn resolve_sub_path(volume: &Path, sub: &str) -> Result<PathBuf, MountError> {
    let io_err = |e: Errno| match e {
        Errno::XDEV => MountError::Escapes {
            sub_path: sub.to_string(),
            volume: volume.to_path_buf(),
        },
        e => MountError::Io {
            sub_path: sub.to_string(),
            source: e.into(),
        },
    };
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let root = openat(
        CWD,
        volume,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let found = match openat2(
        &root,
        sub,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        beneath,
    ) {
        Err(Errno::NOENT) => {
            // Made one component at a time, each resolved beneath the volume.
            let mut path = PathBuf::new();
            for part in Path::new(sub).components() {
                path.push(part);
                match openat2(
                    &root,
                    &path,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    beneath,
                ) {
                    Err(Errno::NOENT) => {
                        let parent = path
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."));
                        let dir = openat2(
                            &root,
                            parent,
                            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                            beneath,
                        )
                        .map_err(io_err)?;
                        match rustix::fs::mkdirat(
                            &dir,
                            part.as_os_str(),
                            Mode::from_raw_mode(0o755),
                        ) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                    other => drop(other.map_err(io_err)?),
                }
            }
            openat2(
                &root,
                sub,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                beneath,
            )
        }
        other => other,
    }
    .map_err(io_err)?;
    std::fs::read_link(format!("/proc/self/fd/{}", found.as_raw_fd())).map_err(|e| MountError::Io {
        sub_path: sub.to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(
        name: &str,
        path: &str,
        sub: Option<&str>,
        expr: Option<&str>,
        ro: bool,
    ) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub.map(Into::into),
            sub_path_expr: expr.map(Into::into),
            read_only: Some(ro),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_follow_volume_mounts_with_read_only_and_sub_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let config = tmp.path().join("config");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(config.join("..2024")).unwrap();
        std::fs::write(config.join("..2024/app.conf"), "x").unwrap();
        std::os::unix::fs::symlink("..2024", config.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/app.conf", config.join("app.conf")).unwrap();
        let c = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                mount("cache", "/cache", None, None, false),
                mount("cache", "/logs", None, Some("logs/$(POD)"), true),
                mount("config", "/etc/app", None, None, false),
                mount("config", "/etc/app.conf", Some("app.conf"), None, false),
            ]),
            ..Default::default()
        };
        let env = [("POD".to_string(), "web-1".to_string())];
        let volume = |name: &str| match name {
            "cache" => Some(Mountable {
                path: cache.clone(),
                read_only: false,
            }),
            "config" => Some(Mountable {
                path: config.clone(),
                read_only: true,
            }),
            _ => None,
        };
        let got = container_mounts(&c, &env, volume).unwrap();
        let want = [
            (cache.clone(), "/cache", false),
            (cache.join("logs/web-1"), "/logs", true),
            (config.clone(), "/etc/app", true),
            // The file itself: a subPath mount does not follow later updates.
            (config.join("..2024/app.conf"), "/etc/app.conf", true),
        ];
        let got: Vec<_> = got
            .iter()
            .map(|m| (m.source.clone(), m.target.as_str(), m.read_only))
            .collect();
        assert_eq!(got, want);
        assert!(
            cache.join("logs/web-1").is_dir(),
            "missing subPath made as a directory"
        );
    }

    #[test]
    fn sub_paths_never_leave_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("rel")).unwrap();
        for sub in ["abs", "abs/passwd", "rel", "rel/new"] {
            let err = resolve_sub_path(&vol, sub).unwrap_err();
            assert!(matches!(err, MountError::Escapes { .. }), "{sub}: {err}");
        }
        assert!(!tmp.path().join("outside/new").exists());
        let c = Container {
            volume_mounts: Some(vec![mount("v", "/x", Some("../x"), None, false)]),
            ..Default::default()
        };
        let vol2 = vol.clone();
        let err = container_mounts(&c, &[], move |_| {
            Some(Mountable {
                path: vol2.clone(),
                read_only: false,
            })
        });
        assert!(matches!(err, Err(MountError::BadSubPath(_))));
        let err = container_mounts(&c, &[], |_| None).unwrap_err();
        assert_eq!(err.to_string(), "volume \"v\" not found");
    }
}
