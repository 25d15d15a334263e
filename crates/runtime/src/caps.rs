//! The capabilities a container gets: Docker's default set (which keeps `ping` working
//! with `NET_RAW`), changed by `securityContext.capabilities` and `privileged` as
//! containerd's CRI plugin does.

use rustix::thread::CapabilitySet;

/// Docker's (and containerd 1.x's) default capabilities.
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A capability name the kernel does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

/// Every capability this kernel interface names.
pub fn all() -> CapabilitySet {
    CapabilitySet::all()
        .iter_names()
        .fold(CapabilitySet::empty(), |s, (_, c)| s | c)
}

fn one(name: &str) -> Result<CapabilitySet, UnknownCapability> {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    CapabilitySet::from_name(&bare.to_ascii_uppercase())
        .ok_or_else(|| UnknownCapability(name.to_string()))
}

/// The set named by `names` (with or without `CAP_`).
pub fn set_of(names: &[String]) -> Result<CapabilitySet, UnknownCapability> {
    names
        .iter()
        .try_fold(CapabilitySet::empty(), |s, n| Ok(s | one(n)?))
}

/// The names in `set`, in the kernel's order.
pub fn names(set: CapabilitySet) -> Vec<String> {
    set.iter_names().map(|(n, _)| n.to_string()).collect()
}

/// The container's capabilities: everything when privileged; otherwise the defaults, then
/// "ALL" in `add` or `drop`, then each other added and dropped name (so `drop: [ALL]` with
/// `add: [NET_ADMIN]` leaves just `NET_ADMIN`).
pub fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, UnknownCapability> {
    if privileged {
        return Ok(names(all()));
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let defaults: Vec<String> = DEFAULT.iter().map(|s| s.to_string()).collect();
    let mut set = set_of(&defaults)?;
    if add.iter().any(is_all) {
        set = all();
    }
    if drop.iter().any(is_all) {
        set = CapabilitySet::empty();
    }
    for c in add.iter().filter(|c| !is_all(c)) {
        set |= one(c)?;
    }
    for c in drop.iter().filter(|c| !is_all(c)) {
        set -= one(c)?;
    }
    Ok(names(set))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_add_drop_all_and_privileged() {
        let default = capabilities(&[], &[], false).unwrap();
        assert_eq!(default.len(), DEFAULT.len());
        assert!(default.contains(&"NET_RAW".to_string()));
        assert!(!default.contains(&"SYS_ADMIN".to_string()));

        let more = capabilities(&s(&["NET_ADMIN", "CAP_SYS_TIME"]), &s(&["KILL"]), false).unwrap();
        assert!(more.contains(&"NET_ADMIN".to_string()));
        assert!(more.contains(&"SYS_TIME".to_string()));
        assert!(!more.contains(&"KILL".to_string()));

        assert_eq!(
            capabilities(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), false).unwrap(),
            ["NET_BIND_SERVICE"]
        );
        assert!(capabilities(&[], &s(&["all"]), false).unwrap().is_empty());
        let everything = capabilities(&s(&["ALL"]), &s(&["CHOWN"]), false).unwrap();
        assert_eq!(everything.len(), names(all()).len() - 1);
        assert_eq!(capabilities(&[], &s(&["ALL"]), true).unwrap(), names(all()));
        assert!(names(all()).contains(&"SYS_ADMIN".to_string()));
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            capabilities(&s(&["FLY"]), &[], false),
            Err(UnknownCapability("FLY".into()))
        );
    }
}
