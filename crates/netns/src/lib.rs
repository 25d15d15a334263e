//! Named network namespaces, the way iproute2 keeps them: a fresh namespace bind-mounted on
//! `/run/netns/<name>`, so `ip netns exec <name>` and `nsenter --net=/run/netns/<name>` see it.
//!
//! Switching namespace is per OS thread, and a thread pool (tokio's workers, the test harness)
//! may run anything on any thread, so this crate never switches a shared thread (see
//! containernetworking's `pkg/ns` README). Two safe ways in:
//! - [`NetNs::run`] runs a closure on a fresh OS thread that entered the namespace and exits
//!   afterwards, so no thread ever leaks back into the pool in the wrong namespace ([`run_in`]
//!   does the same for a namespace known by path, such as `/proc/<pid>/ns/net`);
//! - sockets stay in the namespace they were created in, so [`NetNs::netlink_handle`] (and any
//!   socket made inside [`NetNs::run`]) can be used from any thread afterwards.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where iproute2 keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is empty, too long, or contains `/` or a leading `.`.
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// `/run/netns/<name>` already exists.
    #[error("network namespace {0:?} already exists")]
    Exists(String),
    /// `/run/netns/<name>` does not exist.
    #[error("network namespace {0:?} not found")]
    NotFound(String),
    /// A syscall failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The worker thread panicked.
    #[error("thread in network namespace {0:?} panicked")]
    Panicked(String),
}

/// A local `Result` alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |source| Error::Sys { op, source }
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let op = op.into();
    move |source| Error::Io { op, source }
}

/// An open named network namespace. Holding it keeps an fd on the namespace; deleting is
/// explicit ([`NetNs::delete`]), as with `ip netns del`.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
    file: File,
}

impl NetNs {
    /// Creates `/run/netns/<name>` holding a fresh, empty network namespace (only `lo`, down).
    pub fn create(name: &str) -> Result<NetNs> {
        validate(name)?;
        ensure_run_dir()?;
        let path = path_of(name);
        // create_new: two creators of one name cannot both win.
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(name.to_string()))
            }
            Err(e) => return Err(io_err(format!("create {}", path.display()))(e)),
        }
        // unshare moves only the calling thread, so do it on a throwaway thread.
        let target = path.clone();
        let made = std::thread::spawn(move || -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(format!("bind-mount netns on {}", target.display())))
        })
        .join()
        .map_err(|_| Error::Panicked(name.to_string()))?;
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        NetNs::open(name)
    }

    /// Opens an existing named namespace.
    pub fn open(name: &str) -> Result<NetNs> {
        validate(name)?;
        let path = path_of(name);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(name.to_string()),
            _ => io_err(format!("open {}", path.display()))(e),
        })?;
        Ok(NetNs {
            name: name.to_string(),
            path,
            file,
        })
    }

    /// Opens the namespace at `path`, named or not: `/proc/<pid>/ns/net` is how an agent that
    /// runs in a host's own namespace (a joined host) refers to it.
    pub fn open_path(path: &Path) -> Result<NetNs> {
        let file = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
        Ok(NetNs {
            name: path.display().to_string(),
            path: path.to_path_buf(),
            file,
        })
    }

    /// Whether `/run/netns/<name>` exists.
    pub fn exists(name: &str) -> bool {
        validate(name).is_ok() && path_of(name).exists()
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, or the path it was opened at.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The open namespace file, e.g. for `IFLA_NET_NS_FD` when moving a link here.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Unmounts and removes `/run/netns/<name>`. The namespace itself disappears when the
    /// last fd, process or mount that holds it goes away. Not for one opened by path.
    pub fn delete(self) -> Result<()> {
        delete(&self.name)
    }

    /// Runs `f` on a fresh OS thread that entered this namespace; the thread ends with `f`, so
    /// no thread is ever left in the wrong namespace. `f` may borrow from the caller.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        run_on_thread_in(&self.file, &self.name, f)
    }

    /// Starts `f` on a new OS thread inside this namespace and returns at once: for servers
    /// that must live longer than one call (a listener inside a pod, say).
    pub fn spawn<F, R>(&self, f: F) -> Result<std::thread::JoinHandle<Result<R>>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let fd = self
            .file
            .try_clone()
            .map_err(io_err(format!("dup fd of {}", self.name)))?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || -> Result<R> {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(sys(format!("setns into {name}")))?;
            drop(fd);
            Ok(f())
        }))
    }

    /// An rtnetlink handle whose socket was opened inside this namespace, so every request
    /// made through it acts here, whatever thread sends it. Must be called within a tokio
    /// runtime: the connection task is spawned on it and ends when all handles are dropped.
    pub fn netlink_handle(&self) -> Result<rtnetlink::Handle> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| Error::Io {
            op: "netlink_handle needs a tokio runtime".into(),
            source: io::Error::other(e),
        })?;
        // The socket registers with the reactor of the entered runtime, from the namespaced
        // thread; afterwards it is an ordinary fd.
        let rt2 = rt.clone();
        let (conn, handle, _) = self
            .run(move || {
                let _guard = rt2.enter();
                rtnetlink::new_connection()
            })?
            .map_err(io_err(format!("netlink socket in {}", self.name)))?;
        rt.spawn(conn);
        Ok(handle)
    }
}

/// [`NetNs::run`] for the namespace at `path` (`/run/netns/<name>`, `/proc/<pid>/ns/net`):
/// `f` runs on a fresh OS thread that entered it and ends with `f`. A socket made in `f` stays
/// in that namespace wherever it is used afterwards.
pub fn run_in<F, R>(path: &Path, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let shown = path.display().to_string();
    let file = File::open(path).map_err(io_err(format!("opening {shown}")))?;
    run_on_thread_in(&file, &shown, f)
}

fn run_on_thread_in<F, R>(ns: &File, name: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| -> Result<R> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(sys(format!("setns into {name}")))?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::Panicked(name.to_string()))?
    })
}

/// Unmounts and removes `/run/netns/<name>` (what `ip netns del` does). Missing is success,
/// so cleanup paths can call it unconditionally.
pub fn delete(name: &str) -> Result<()> {
    validate(name)?;
    let path = path_of(name);
    if !path.exists() {
        return Ok(());
    }
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(sys(format!("umount {}", path.display()))(e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", path.display()))(e)),
    }
}

/// Names under `/run/netns` (what `ip netns list` shows), sorted.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("read {NETNS_RUN_DIR}"))(e)),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn validate(name: &str) -> Result<()> {
    // iproute2 refuses names that would escape /run/netns; 255 is the file name limit.
    if name.is_empty() || name.len() > 255 || name.contains('/') || name.starts_with('.') {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Makes `/run/netns` exist and be a shared mount, as iproute2 does, so namespace mounts made
/// here propagate to other mount namespaces (and do not pin copies there).
fn ensure_run_dir() -> Result<()> {
    // Two first creators racing would stack two bind mounts; serialise within the process.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(io_err(format!("mkdir {NETNS_RUN_DIR}")))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(
        None::<&str>,
        NETNS_RUN_DIR,
        Some("none"),
        shared,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it on itself, then retry.
        Err(nix::Error::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(format!("bind-mount {NETNS_RUN_DIR}")))?;
            mount(
                None::<&str>,
                NETNS_RUN_DIR,
                Some("none"),
                shared,
                None::<&str>,
            )
            .map_err(sys(format!("make {NETNS_RUN_DIR} shared")))
        }
        Err(e) => Err(sys(format!("make {NETNS_RUN_DIR} shared"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_run_netns_are_refused() {
        for bad in ["", "a/b", "..", ".hidden", &"x".repeat(256)] {
            assert!(
                matches!(validate(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(validate("kinet-demo-worker").is_ok());
    }
}
