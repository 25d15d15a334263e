//! Applying a container spec, as root, in youki's order. Two processes take part:
//!
//! - [`join_sandbox`], in the shim before it starts the container: joins the pause
//!   process's network, UTS and IPC namespaces, and unshares a PID namespace (or joins the
//!   pod's), so the next child is the container's PID 1;
//! - `start`, in that child, forked by the shim ([`FirstProcess`]) and executing nothing before
//!   the container's program, as crun does: a new mount namespace, the cgroups, the mount
//!   plan on the overlay root, `pivot_root`, masked and read-only paths, the credentials and
//!   capabilities, then `execve` of the container's program.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::caps;
use crate::devices;
use crate::mounts::{self, Step, MASKED_PATHS, READONLY_PATHS};
use crate::paths::secure_join;
use crate::spec::{ContainerSpec, PidNamespace};

/// Why a container could not be started.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Caps(#[from] caps::UnknownCapability),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("no command specified")]
    NoCommand,
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(
        "the container's first process must be forked from a process with one thread, not {0}"
    )]
    Threads(usize),
}

type Result<T> = std::result::Result<T, InitError>;

trait Context<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| InitError::Sys {
            what: what(),
            source: e.into(),
        })
    }
}

fn open_ns(pid: u32, name: &str) -> Result<File> {
    let path = format!("/proc/{pid}/ns/{name}");
    File::open(&path).what(|| format!("opening {path}"))
}

/// The caller's own PID namespace, to go back to once the container's first process is
/// started: a process whose children's PID namespace is not its own cannot start threads.
#[derive(Debug)]
pub struct OwnPids(File);

impl OwnPids {
    /// The caller's PID namespace.
    pub fn current() -> Result<OwnPids> {
        let f = File::open("/proc/self/ns/pid").what(|| "opening /proc/self/ns/pid".into())?;
        Ok(OwnPids(f))
    }

    /// Children (and threads) are in the caller's PID namespace again.
    pub fn restore(self) -> Result<()> {
        setns(&self.0, CloneFlags::CLONE_NEWPID)
            .what(|| "returning to the shim's PID namespace".into())
    }
}

/// In the shim: enters the sandbox's namespaces so that the next child it starts is the
/// container's first process; [`OwnPids::restore`] after starting it. Call it with one
/// thread only.
pub fn join_sandbox(spec: &ContainerSpec) -> Result<OwnPids> {
    let own = OwnPids::current()?;
    let pid_ns = match spec.pid_namespace {
        PidNamespace::Own => None,
        // The pause process's children live in the pod's PID namespace.
        PidNamespace::Pod => Some(open_ns(spec.sandbox_pid, "pid_for_children")?),
        PidNamespace::Container(pid) => Some(open_ns(pid, "pid")?),
    };
    for (name, flag) in [
        ("net", CloneFlags::CLONE_NEWNET),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("ipc", CloneFlags::CLONE_NEWIPC),
    ] {
        let ns = open_ns(spec.sandbox_pid, name)?;
        setns(&ns, flag).what(|| format!("joining the pod's {name} namespace"))?;
    }
    match pid_ns {
        Some(ns) => {
            setns(&ns, CloneFlags::CLONE_NEWPID).what(|| "joining the PID namespace".into())?
        }
        None => unshare(CloneFlags::CLONE_NEWPID).what(|| "unsharing a PID namespace".into())?,
    }
    Ok(own)
}

/// For `kubectl exec` and exec probes: joins the namespaces of the container whose first
/// process is `pid`, goes to its working directory and takes its credentials, so that the
/// next child runs as the container's own processes do. Call it with one thread only.
pub fn enter(pid: u32, spec: &ContainerSpec) -> Result<()> {
    // All opened first: once in the container's mounts, /proc is the container's.
    let namespaces = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ]
    .map(|(name, flag)| open_ns(pid, name).map(|f| (name, f, flag)));
    for ns in namespaces {
        let (name, file, flag) = ns?;
        setns(&file, flag).what(|| format!("joining the container's {name} namespace"))?;
    }
    std::env::set_current_dir(&spec.process.cwd)
        .what(|| format!("chdir to {}", spec.process.cwd))?;
    set_credentials(spec)
}

/// The container's first process, for the shim to spawn once it has [joined the
/// sandbox](join_sandbox): the child forked by [`FirstProcess::spawn`] runs `start` and so
/// becomes the container's program, with no program executed in between. If it cannot, it
/// writes why to its standard error (the container's log) and exits with 1.
pub struct FirstProcess(Command);

impl FirstProcess {
    pub fn new(spec: ContainerSpec) -> FirstProcess {
        let mut cmd = Command::new(spec.process.argv.first().map_or("", String::as_str));
        #[allow(unsafe_code)]
        // SAFETY: the command is only forked by `spawn`, which checks right before that the
        // process has one thread, so the forked child holds no lock that another thread had
        // taken, and may allocate and run ordinary code; it leaves only through the
        // container's exec or `_exit`, never back into the caller's code.
        unsafe {
            cmd.pre_exec(move || {
                let Err(e) = start(&spec);
                let _ = writeln!(std::io::stderr(), "Error: {e}");
                libc::_exit(1)
            });
        }
        FirstProcess(cmd)
    }

    /// Its standard input, output and error.
    pub fn stdio(&mut self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> &mut Self {
        self.0.stdin(stdin).stdout(stdout).stderr(stderr);
        self
    }

    /// Forks it. The caller must have one thread: that is checked here, where no other
    /// thread can appear before the fork.
    pub fn spawn(&mut self) -> Result<Child> {
        let threads = std::fs::read_dir("/proc/self/task")
            .what(|| "listing /proc/self/task".into())?
            .count();
        if threads != 1 {
            return Err(InitError::Threads(threads));
        }
        self.0
            .spawn()
            .what(|| format!("starting {:?}", self.0.get_program()))
    }
}

/// In the container's first process: sets up its root and credentials and executes its
/// program. Returns only on failure.
fn start(spec: &ContainerSpec) -> Result<Infallible> {
    if spec.process.argv.is_empty() {
        return Err(InitError::NoCommand);
    }
    unshare(CloneFlags::CLONE_NEWNS).what(|| "unsharing a mount namespace".into())?;
    for dir in &spec.cgroups {
        // "0" is the writer itself, whatever its PID in this namespace.
        std::fs::write(dir.join("cgroup.procs"), "0")
            .what(|| format!("joining {}", dir.display()))?;
    }
    // Nothing mounted from here on goes back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .what(|| "making / a slave mount".into())?;
    let root = spec.rootfs();
    let host_devices = match spec.privileged {
        true => devices::host()?,
        false => Vec::new(),
    };
    for step in mounts::plan(spec, &host_devices) {
        apply(&root, &step)?;
    }
    // Made while host paths are reachable: a missing working directory appears, as in runc.
    let cwd =
        secure_join(&root, &spec.process.cwd).what(|| "resolving the working directory".into())?;
    std::fs::create_dir_all(&cwd)
        .what(|| format!("creating the working directory {}", spec.process.cwd))?;
    pivot(&root)?;
    if !spec.privileged {
        mask_paths()?;
    }
    if spec.read_only_root {
        remount_read_only("/")?;
    }
    std::env::set_current_dir(&spec.process.cwd)
        .what(|| format!("chdir to {}", spec.process.cwd))?;
    let program = lookup(&spec.process.argv[0], &spec.process.env)?;
    if spec.process.terminal {
        nix::unistd::setsid().what(|| "starting a session".into())?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).what(|| "taking the terminal".into())?;
    }
    set_credentials(spec)?;
    let err = std::process::Command::new(&program)
        .arg0(&spec.process.argv[0])
        .args(&spec.process.argv[1..])
        .env_clear()
        .envs(spec.process.env.iter().map(|(k, v)| (k, v)))
        .exec();
    Err(InitError::Sys {
        what: format!("exec {}", program.display()),
        source: err,
    })
}

fn mkdirs(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).what(|| format!("creating {}", p.display()))
}

/// A mount point for `source` at `target`: a directory, or an empty file for a file.
fn mount_point(target: &Path, file: bool) -> Result<()> {
    if !file {
        return mkdirs(target);
    }
    if let Some(parent) = target.parent() {
        mkdirs(parent)?;
    }
    if !target.exists() {
        File::create(target).what(|| format!("creating {}", target.display()))?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .what(|| format!("binding {} on {}", source.display(), target.display()))?;
    if read_only {
        remount_read_only(target)?;
    }
    Ok(())
}

fn remount_read_only(target: impl AsRef<Path>) -> Result<()> {
    let target = target.as_ref();
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .what(|| format!("remounting {} read-only", target.display()))
}

fn apply(root: &Path, step: &Step) -> Result<()> {
    let at = |p: &str| secure_join(root, p).what(|| format!("resolving {p}"));
    match step {
        Step::Overlay {
            lower,
            upper,
            work,
            target,
        } => {
            mkdirs(upper)?;
            mkdirs(work)?;
            let dest = if target == "/" {
                root.to_path_buf()
            } else {
                at(target)?
            };
            mkdirs(&dest)?;
            let data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                &dest,
                Some("overlay"),
                MsFlags::empty(),
                Some(data.as_str()),
            )
            .what(|| format!("mounting the overlay for {target}"))
        }
        Step::Bind {
            source,
            target,
            read_only,
        } => {
            let dest = at(target)?;
            mount_point(&dest, !source.is_dir())?;
            bind(source, &dest, *read_only)
        }
        Step::Fs {
            fstype,
            target,
            flags,
            data,
        } => {
            let dest = at(target)?;
            mkdirs(&dest)?;
            mount(Some(*fstype), &dest, Some(*fstype), *flags, Some(*data))
                .what(|| format!("mounting {fstype} on {target}"))
        }
        Step::Device(d) => {
            let dest = at(&d.path)?;
            if let Some(parent) = dest.parent() {
                mkdirs(parent)?;
            }
            let kind = match d.block {
                true => SFlag::S_IFBLK,
                false => SFlag::S_IFCHR,
            };
            mknod(
                &dest,
                kind,
                Mode::from_bits_truncate(d.mode),
                makedev(d.major, d.minor),
            )
            .what(|| format!("creating {}", d.path))?;
            // mknod obeys the umask; the modes are the planned ones.
            std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(d.mode))
                .what(|| format!("chmod {}", d.path))
        }
        Step::Symlink { path, to } => {
            std::os::unix::fs::symlink(to, at(path)?).what(|| format!("linking {path}"))
        }
    }
}

/// `pivot_root` onto `root` and detaches the old root, as runc does.
fn pivot(root: &Path) -> Result<()> {
    std::env::set_current_dir(root).what(|| "entering the root".into())?;
    rustix::process::pivot_root(".", ".").what(|| "pivot_root".into())?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .what(|| "making the old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).what(|| "detaching the old root".into())?;
    std::env::set_current_dir("/").what(|| "chdir /".into())
}

/// containerd's masked and read-only paths, where they exist.
fn mask_paths() -> Result<()> {
    for p in MASKED_PATHS {
        let path = Path::new(p);
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .what(|| format!("masking {p}"))?,
            Ok(_) => bind(Path::new("/dev/null"), path, false)?,
            Err(_) => {}
        }
    }
    for p in READONLY_PATHS.iter().filter(|p| Path::new(p).exists()) {
        bind(Path::new(p), Path::new(p), true)?;
    }
    Ok(())
}

/// `program` as execvp finds it on the container's PATH (now that `/` is the container's).
fn lookup(program: &str, env: &[(String, String)]) -> Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(crate::config::DEFAULT_PATH);
    crate::paths::search_path(program, path, |p| Ok(PathBuf::from(p)))
        .ok_or_else(|| InitError::NotFound(program.to_string()))
}

/// Groups, user and capabilities: the bounding set is cut while still root, capabilities
/// kept across the change of user, then set as planned; no_new_privs and seccomp last.
fn set_credentials(spec: &ContainerSpec) -> Result<()> {
    let p = &spec.process;
    let mut wanted: CapabilitySet = caps::set_of(&p.capabilities)?;
    for (name, cap) in caps::all().iter_names() {
        // A capability newer than the running kernel, or one that kinet itself was started
        // without (privileged asks for all), is in no set already.
        let known = rustix::thread::capability_is_in_bounding_set(cap).unwrap_or(false);
        if !known {
            wanted.remove(cap);
        } else if !wanted.contains(cap) {
            rustix::thread::remove_capability_from_bounding_set(cap)
                .what(|| format!("dropping CAP_{name} from the bounding set"))?;
        }
    }
    rustix::thread::set_keep_capabilities(true).what(|| "keeping capabilities".into())?;
    let groups: Vec<Gid> = p.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).what(|| "setgroups".into())?;
    nix::unistd::setgid(Gid::from_raw(p.gid)).what(|| format!("setgid {}", p.gid))?;
    nix::unistd::setuid(Uid::from_raw(p.uid)).what(|| format!("setuid {}", p.uid))?;
    rustix::thread::set_keep_capabilities(false).what(|| "resetting keep-capabilities".into())?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: wanted,
            permitted: wanted,
            inheritable: CapabilitySet::empty(),
        },
    )
    .what(|| "setting capabilities".into())?;
    if p.no_new_privileges {
        rustix::thread::set_no_new_privs(true).what(|| "no_new_privs".into())?;
    }
    // Last: the filter refuses calls made above (setns for exec, for one).
    crate::seccomp::install(p.seccomp, &p.capabilities)?;
    // After the change of user, which would clear it: the container dies with its shim.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .what(|| "setting the parent-death signal".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_never_forked_from_a_process_with_threads() {
        // libtest runs this test on a thread of its own, beside the main thread.
        let spec = crate::mounts::tests::spec(Vec::new());
        let spawned = FirstProcess::new(spec).spawn();
        assert!(matches!(spawned, Err(InitError::Threads(n)) if n > 1));
    }
}
