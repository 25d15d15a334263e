//! The `RuntimeDefault` seccomp profile: what containerd's default profile refuses, given
//! the container's capabilities, as a BPF filter. Planned purely ([`refused`]), compiled
//! with `seccompiler`, installed last before `execve` ([`install`]).
//!
//! containerd's profile lists what is allowed and refuses the rest. kinet's filter lists
//! what that profile refuses and allows the rest: the same verdict for every system call
//! the profile names, while a call newer than this list is allowed.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

/// `securityContext.seccompProfile.type`, as far as kinet runs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// No filter.
    #[default]
    Unconfined,
    /// containerd's default profile.
    RuntimeDefault,
}

/// Why the filter could not be made or installed.
#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub struct SeccompError(String);

/// Refused unless the container has the capability (containerd's `includes.caps`).
const GATED: &[(&str, &[(&str, i64)])] = &[
    (
        "SYS_ADMIN",
        &[
            ("bpf", libc::SYS_bpf),
            ("fanotify_init", libc::SYS_fanotify_init),
            ("fsconfig", libc::SYS_fsconfig),
            ("fsmount", libc::SYS_fsmount),
            ("fsopen", libc::SYS_fsopen),
            ("fspick", libc::SYS_fspick),
            ("lookup_dcookie", libc::SYS_lookup_dcookie),
            ("mount", libc::SYS_mount),
            ("mount_setattr", libc::SYS_mount_setattr),
            ("move_mount", libc::SYS_move_mount),
            ("name_to_handle_at", libc::SYS_name_to_handle_at),
            ("open_tree", libc::SYS_open_tree),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("pivot_root", libc::SYS_pivot_root),
            ("quotactl", libc::SYS_quotactl),
            ("setns", libc::SYS_setns),
            ("swapoff", libc::SYS_swapoff),
            ("swapon", libc::SYS_swapon),
            ("umount2", libc::SYS_umount2),
            ("unshare", libc::SYS_unshare),
        ],
    ),
    (
        "SYS_BOOT",
        &[
            ("kexec_file_load", libc::SYS_kexec_file_load),
            ("kexec_load", libc::SYS_kexec_load),
            ("reboot", libc::SYS_reboot),
        ],
    ),
    (
        "SYS_MODULE",
        &[
            ("delete_module", libc::SYS_delete_module),
            ("finit_module", libc::SYS_finit_module),
            ("init_module", libc::SYS_init_module),
        ],
    ),
    (
        "SYS_TIME",
        &[
            ("clock_adjtime", libc::SYS_clock_adjtime),
            ("clock_settime", libc::SYS_clock_settime),
            ("settimeofday", libc::SYS_settimeofday),
        ],
    ),
    (
        "SYS_NICE",
        &[
            ("get_mempolicy", libc::SYS_get_mempolicy),
            ("mbind", libc::SYS_mbind),
            ("move_pages", libc::SYS_move_pages),
            ("set_mempolicy", libc::SYS_set_mempolicy),
        ],
    ),
    ("SYS_PACCT", &[("acct", libc::SYS_acct)]),
    ("SYSLOG", &[("syslog", libc::SYS_syslog)]),
    ("SYS_TTY_CONFIG", &[("vhangup", libc::SYS_vhangup)]),
    (
        "DAC_READ_SEARCH",
        &[("open_by_handle_at", libc::SYS_open_by_handle_at)],
    ),
];

/// Refused whatever the capabilities: the kernel keyring is not namespaced, and the rest
/// are obsolete or let a process reach into the kernel.
const ALWAYS: &[(&str, i64)] = &[
    ("add_key", libc::SYS_add_key),
    ("keyctl", libc::SYS_keyctl),
    ("request_key", libc::SYS_request_key),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("nfsservctl", libc::SYS_nfsservctl),
];

/// x86-only calls the profile refuses (port I/O and the like need SYS_RAWIO).
#[cfg(target_arch = "x86_64")]
const X86: &[(&str, i64)] = &[
    ("_sysctl", libc::SYS__sysctl),
    ("sysfs", libc::SYS_sysfs),
    ("uselib", libc::SYS_uselib),
    ("ustat", libc::SYS_ustat),
];
#[cfg(not(target_arch = "x86_64"))]
const X86: &[(&str, i64)] = &[];
#[cfg(target_arch = "x86_64")]
const RAWIO: &[(&str, i64)] = &[("ioperm", libc::SYS_ioperm), ("iopl", libc::SYS_iopl)];
#[cfg(not(target_arch = "x86_64"))]
const RAWIO: &[(&str, i64)] = &[];

/// `clone` flags that make namespaces: refused without SYS_ADMIN.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// What the profile refuses a container with `capabilities` (names without `CAP_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Refused with EPERM, by name and number.
    pub calls: Vec<(&'static str, i64)>,
    /// `clone` with a namespace flag is refused with EPERM.
    pub clone_namespaces: bool,
    /// `clone3`, whose flags a filter cannot read, fails with ENOSYS so that the C library
    /// falls back to `clone`.
    pub clone3: bool,
}

/// The profile's verdicts for a container with `capabilities`.
pub fn refused(capabilities: &[String]) -> Refused {
    let has = |cap: &str| capabilities.iter().any(|c| c == cap);
    let mut calls: Vec<(&'static str, i64)> = ALWAYS.iter().chain(X86).copied().collect();
    for (cap, gated) in GATED {
        if !has(cap) {
            calls.extend(gated.iter().copied());
        }
    }
    if !has("SYS_RAWIO") {
        calls.extend(RAWIO.iter().copied());
    }
    calls.sort_unstable();
    calls.dedup_by_key(|(_, nr)| *nr);
    let admin = has("SYS_ADMIN");
    Refused {
        calls,
        clone_namespaces: !admin,
        clone3: !admin,
    }
}

fn err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError(e.to_string())
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(err)
}

/// The BPF programs for `refused`: EPERM for the refused calls, then ENOSYS for `clone3`.
pub fn programs(refused: &Refused) -> Result<Vec<BpfProgram>, SeccompError> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = refused
        .calls
        .iter()
        .map(|&(_, nr)| (nr, Vec::new()))
        .collect();
    if refused.clone_namespaces {
        let rules = NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let c = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )
                .map_err(err)?;
                SeccompRule::new(vec![c]).map_err(err)
            })
            .collect::<Result<_, _>>()?;
        eperm.insert(libc::SYS_clone, rules);
    }
    let mut filters = vec![(eperm, libc::EPERM)];
    if refused.clone3 {
        filters.push((
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            libc::ENOSYS,
        ));
    }
    filters
        .into_iter()
        .map(|(rules, errno)| {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch()?,
            )
            .map_err(err)?;
            BpfProgram::try_from(filter).map_err(err)
        })
        .collect()
}

/// Installs `profile` on the calling thread for it and what it executes. seccompiler sets
/// `no_new_privs` first, so it needs no capability (and setuid files no longer raise
/// privileges under a filter).
pub fn install(profile: Profile, capabilities: &[String]) -> Result<(), SeccompError> {
    if profile == Profile::Unconfined {
        return Ok(());
    }
    for program in programs(&refused(capabilities))? {
        seccompiler::apply_filter(&program).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &Refused) -> Vec<&'static str> {
        r.calls.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn docker_capabilities_leave_namespaces_mounts_and_keys_refused() {
        let docker: Vec<String> = crate::caps::capabilities(&[], &[], false).unwrap();
        let r = refused(&docker);
        let n = names(&r);
        for call in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "mount",
            "setns",
            "bpf",
        ] {
            assert!(n.contains(&call), "{call} allowed: {n:?}");
        }
        for call in ["kexec_load", "init_module", "settimeofday", "acct"] {
            assert!(n.contains(&call), "{call} allowed: {n:?}");
        }
        assert!(r.clone_namespaces && r.clone3);
        assert_eq!(programs(&r).unwrap().len(), 2);
    }

    #[test]
    fn capabilities_lift_their_calls_but_never_the_keyring() {
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let admin = refused(&caps(&["SYS_ADMIN", "SYS_TIME"]));
        let n = names(&admin);
        assert!(!n.contains(&"unshare") && !n.contains(&"mount") && !n.contains(&"settimeofday"));
        assert!(n.contains(&"keyctl") && n.contains(&"reboot"));
        assert!(!admin.clone_namespaces && !admin.clone3);
        assert_eq!(programs(&admin).unwrap().len(), 1);
    }
}
