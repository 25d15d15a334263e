//! Who a container's process runs as: the image's `User` (`name`, `uid`, `name:group`,
//! `uid:gid`, ...) resolved in the image's own `/etc/passwd` and `/etc/group`, overridden by
//! `runAsUser`/`runAsGroup`, plus `supplementalGroups`, as containerd resolves them.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's in `/etc/group`, then the pod's.
    pub groups: Vec<u32>,
    /// The home directory from `/etc/passwd`, for `HOME`.
    pub home: Option<String>,
}

/// Why a user cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

/// The pod's securityContext overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub supplemental_groups: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

/// (name, gid, members) of each `/etc/group` line.
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

/// Resolves the image's `User` with the pod's overrides against the image's files.
pub fn resolve(
    image_user: &str,
    overrides: &Overrides,
    passwd: &str,
    group: &str,
) -> Result<User, UserError> {
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let by_uid = |uid: u32| passwd_entries(passwd).find(|e| e.uid == uid);
    let entry = match overrides.run_as_user {
        Some(uid) => by_uid(uid),
        None if user_part.is_empty() => by_uid(0),
        None => match user_part.parse::<u32>() {
            Ok(uid) => by_uid(uid),
            Err(_) => Some(
                passwd_entries(passwd)
                    .find(|e| e.name == user_part)
                    .ok_or_else(|| UserError::NoUser(user_part.to_string()))?,
            ),
        },
    };
    let uid = overrides
        .run_as_user
        .or_else(|| user_part.parse().ok())
        .or(entry.as_ref().map(|e| e.uid))
        .unwrap_or(0);
    let mut gid = entry.as_ref().map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(group)
                .find(|(name, _, _)| *name == g)
                .map(|(_, id, _)| id)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    if let Some(g) = overrides.run_as_group {
        gid = g;
    }
    let mut groups: Vec<u32> = match &entry {
        Some(e) => group_entries(group)
            .filter(|(_, id, members)| members.contains(&e.name) && *id != gid)
            .map(|(_, id, _)| id)
            .collect(),
        None => Vec::new(),
    };
    groups.extend(&overrides.supplemental_groups);
    groups.dedup();
    Ok(User {
        uid,
        gid,
        groups,
        home: entry.map(|e| e.home.to_string()).filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:\nwww:x:33:nginx\nnogroup:x:65534:\n";

    fn r(user: &str, o: Overrides) -> Result<User, UserError> {
        resolve(user, &o, PASSWD, GROUP)
    }

    #[test]
    fn image_user_forms() {
        let root = r("", Overrides::default()).unwrap();
        assert_eq!(
            (root.uid, root.gid, root.home.as_deref()),
            (0, 0, Some("/root"))
        );
        let nginx = r("nginx", Overrides::default()).unwrap();
        assert_eq!(
            (nginx.uid, nginx.gid, nginx.groups.clone()),
            (101, 101, vec![33])
        );
        assert_eq!(r("101", Overrides::default()).unwrap(), nginx);
        let u = r("nginx:www", Overrides::default()).unwrap();
        assert_eq!((u.uid, u.gid), (101, 33));
        let u = r("1000:1000", Overrides::default()).unwrap();
        assert_eq!((u.uid, u.gid, u.home), (1000, 1000, None));
        assert_eq!(
            r("ghost", Overrides::default()),
            Err(UserError::NoUser("ghost".into()))
        );
        assert_eq!(
            r("nginx:ghosts", Overrides::default()),
            Err(UserError::NoGroup("ghosts".into()))
        );
    }

    #[test]
    fn security_context_overrides_the_image() {
        let o = Overrides {
            run_as_user: Some(65534),
            run_as_group: None,
            supplemental_groups: vec![2000],
        };
        let u = r("nginx", o).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (65534, 65534, vec![2000]));
        let o = Overrides {
            run_as_user: Some(1234),
            run_as_group: Some(5678),
            supplemental_groups: vec![],
        };
        let u = r("", o).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
    }
}
