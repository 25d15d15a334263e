//! The ordered mount plan of a container, as youki and crun build it from a runtime spec
//! with containerd's defaults: the overlay root, the image's host binds, `/proc`, a minimal
//! `/dev`, read-only `/sys`, then the caller's bind mounts. Masked and read-only paths come
//! after `pivot_root`.

use std::path::PathBuf;

use nix::mount::MsFlags;

use crate::spec::ContainerSpec;

/// One step of a container's root filesystem set-up. Targets are paths inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An overlay with the read-only `lower` under the instance's `upper` and `work`.
    Overlay {
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: String,
    },
    /// A bind mount; a directory or a file, as the source is.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A kernel filesystem.
    Fs {
        fstype: &'static str,
        target: &'static str,
        flags: MsFlags,
        data: &'static str,
    },
    /// A device node made with mknod.
    Device(Device),
    Symlink {
        path: &'static str,
        to: &'static str,
    },
}

/// A device node inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    /// A block device (else a character device).
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
}

/// containerd's masked paths: hidden under an empty read-only tmpfs (directories) or
/// `/dev/null` (files).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/core", "/proc/kcore"),
    ("/dev/ptmx", "pts/ptmx"),
];

fn fs(fstype: &'static str, target: &'static str, flags: MsFlags, data: &'static str) -> Step {
    Step::Fs {
        fstype,
        target,
        flags,
        data,
    }
}

/// The set-up of `spec`'s root, in order. A privileged container also gets `host_devices`
/// (the host's `/dev`, as containerd gives it) and a writable `/sys`, as runc does.
pub fn plan(spec: &ContainerSpec, host_devices: &[Device]) -> Vec<Step> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let sys_flags = match spec.privileged {
        true => hardened,
        false => hardened | MsFlags::MS_RDONLY,
    };
    let mut steps = vec![Step::Overlay {
        lower: spec.image.rootfs.clone(),
        upper: spec.dir.join("upper"),
        work: spec.dir.join("work"),
        target: "/".into(),
    }];
    for (i, b) in spec.image.host_binds.iter().enumerate() {
        // A read-only root takes no writes anywhere, so a plain read-only bind will do.
        steps.push(if spec.read_only_root || !b.source.is_dir() {
            Step::Bind {
                source: b.source.clone(),
                target: b.target.clone(),
                read_only: true,
            }
        } else {
            let layer = spec.dir.join("host").join(i.to_string());
            Step::Overlay {
                lower: b.source.clone(),
                upper: layer.join("upper"),
                work: layer.join("work"),
                target: b.target.clone(),
            }
        });
    }
    steps.extend([
        fs("proc", "/proc", hardened, ""),
        fs(
            "tmpfs",
            "/dev",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
    ]);
    let minimal = DEVICES.iter().map(|&(path, major, minor)| Device {
        path: path.into(),
        block: false,
        major,
        minor,
        mode: 0o666,
    });
    steps.extend(minimal.map(Step::Device));
    if spec.privileged {
        let taken = |d: &Device| {
            DEVICES.iter().any(|(p, _, _)| *p == d.path)
                || DEV_LINKS.iter().any(|(p, _)| *p == d.path)
        };
        steps.extend(
            host_devices
                .iter()
                .filter(|d| !taken(d))
                .cloned()
                .map(Step::Device),
        );
    }
    steps.extend(
        DEV_LINKS
            .iter()
            .map(|&(path, to)| Step::Symlink { path, to }),
    );
    steps.extend([
        fs(
            "devpts",
            "/dev/pts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        fs("tmpfs", "/dev/shm", hardened, "mode=1777,size=65536k"),
        fs("mqueue", "/dev/mqueue", hardened, ""),
        // After joining the pod's network namespace: /sys/class/net lists the pod's links.
        fs("sysfs", "/sys", sys_flags, ""),
    ]);
    steps.extend(spec.mounts.iter().map(|m| Step::Bind {
        source: m.source.clone(),
        target: m.target.clone(),
        read_only: m.read_only,
    }));
    steps
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::{BindMount, HostBind, ImageRoot, PidNamespace, Process};

    pub(crate) fn spec(host_binds: Vec<HostBind>) -> ContainerSpec {
        ContainerSpec {
            sandbox_pid: 1,
            pid_namespace: PidNamespace::Own,
            image: ImageRoot {
                rootfs: "/images/x/rootfs".into(),
                host_binds,
            },
            dir: "/pods/u/containers/c".into(),
            mounts: vec![BindMount {
                source: "/pods/u/etc-hosts".into(),
                target: "/etc/hosts".into(),
                read_only: false,
            }],
            process: Process {
                argv: vec!["sh".into()],
                env: Vec::new(),
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                groups: Vec::new(),
                capabilities: Vec::new(),
                no_new_privileges: false,
                seccomp: Default::default(),
                terminal: false,
            },
            read_only_root: false,
            privileged: false,
            cgroups: Vec::new(),
        }
    }

    fn targets(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Overlay { target, .. } | Step::Bind { target, .. } => target.clone(),
                Step::Fs { target, .. } => target.to_string(),
                Step::Device(d) => d.path.clone(),
                Step::Symlink { path, .. } => path.to_string(),
            })
            .collect()
    }

    #[test]
    fn root_first_then_kernel_filesystems_then_the_callers_binds() {
        let usr = HostBind {
            source: std::env::temp_dir(),
            target: "/usr".into(),
        };
        let steps = plan(&spec(vec![usr]), &[]);
        let t = targets(&steps);
        assert_eq!(t[..4], ["/", "/usr", "/proc", "/dev"]);
        assert_eq!(
            t[4..],
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/fd",
                "/dev/stdin",
                "/dev/stdout",
                "/dev/stderr",
                "/dev/core",
                "/dev/ptmx",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/etc/hosts"
            ]
        );
        assert_eq!(
            steps[0],
            Step::Overlay {
                lower: "/images/x/rootfs".into(),
                upper: "/pods/u/containers/c/upper".into(),
                work: "/pods/u/containers/c/work".into(),
                target: "/".into(),
            }
        );
        // A host directory is an overlay whose writes stay in the instance's directory.
        assert!(matches!(&steps[1], Step::Overlay { upper, .. }
            if upper == std::path::Path::new("/pods/u/containers/c/host/0/upper")));
        let Step::Fs { flags, .. } = steps
            .iter()
            .find(|s| matches!(s, Step::Fs { target: "/sys", .. }))
            .unwrap()
        else {
            unreachable!()
        };
        assert!(flags.contains(MsFlags::MS_RDONLY));
    }

    fn sys_flags(steps: &[Step]) -> MsFlags {
        steps
            .iter()
            .find_map(|s| match s {
                Step::Fs {
                    target: "/sys",
                    flags,
                    ..
                } => Some(*flags),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn privileged_containers_get_the_host_devices_and_a_writable_sys() {
        let tun = Device {
            path: "/dev/net/tun".into(),
            block: false,
            major: 10,
            minor: 200,
            mode: 0o666,
        };
        let null = Device {
            path: "/dev/null".into(),
            ..tun.clone()
        };
        let host = [tun.clone(), null];
        let plain = plan(&spec(Vec::new()), &host);
        assert!(!plain.contains(&Step::Device(tun.clone())));
        assert!(sys_flags(&plain).contains(MsFlags::MS_RDONLY));
        let mut privileged = spec(Vec::new());
        privileged.privileged = true;
        let steps = plan(&privileged, &host);
        assert!(steps.contains(&Step::Device(tun)));
        // The minimal /dev/null is made once.
        let nulls = targets(&steps).iter().filter(|t| *t == "/dev/null").count();
        assert_eq!(nulls, 1);
        assert!(!sys_flags(&steps).contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn host_files_and_read_only_roots_get_read_only_binds() {
        let kinet = HostBind {
            source: "/no/such/kinet".into(),
            target: "/kinet".into(),
        };
        let usr = HostBind {
            source: std::env::temp_dir(),
            target: "/usr".into(),
        };
        let steps = plan(&spec(vec![kinet.clone()]), &[]);
        assert_eq!(
            steps[1],
            Step::Bind {
                source: kinet.source,
                target: "/kinet".into(),
                read_only: true
            }
        );
        let mut ro = spec(vec![usr]);
        ro.read_only_root = true;
        assert!(matches!(
            plan(&ro, &[])[1],
            Step::Bind {
                read_only: true,
                ..
            }
        ));
    }
}
