//! A container's process from its image's config and the Kubernetes container, by
//! containerd's rules: `command` replaces the image's Entrypoint and drops its Cmd, `args`
//! alone replaces Cmd; the environment is PATH, HOSTNAME, the image's, then the
//! container's, later names winning; the working directory is `workingDir`, the image's,
//! or `/`.

/// The PATH a container gets when its image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a container runs by default, from an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group`, ... (see [`crate::user`]).
    pub user: String,
}

impl ImageDefaults {
    /// The defaults an OCI image config gives.
    pub fn from_oci(c: &oci_spec::image::Config) -> ImageDefaults {
        ImageDefaults {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|d| !d.is_empty()),
            user: c.user().clone().unwrap_or_default(),
        }
    }
}

/// The argv from the image's `entrypoint` and `cmd` and the container's `command` and `args`.
pub fn argv(
    entrypoint: &[String],
    cmd: &[String],
    command: &[String],
    args: &[String],
) -> Vec<String> {
    if !command.is_empty() {
        return command.iter().chain(args).cloned().collect();
    }
    let tail = if args.is_empty() { cmd } else { args };
    // An Entrypoint of [""] means none (Docker's way of resetting it).
    let entrypoint = match entrypoint {
        [only] if only.is_empty() => &[][..],
        e => e,
    };
    entrypoint.iter().chain(tail).cloned().collect()
}

/// Sets `name` in `env`, in place if present.
pub fn set_env(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

/// The environment: PATH, HOSTNAME, the image's `NAME=value` entries, then the container's.
pub fn env(
    image_env: &[String],
    hostname: &str,
    container: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut out = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOSTNAME".to_string(), hostname.to_string()),
    ];
    let image = image_env.iter().map(|e| match e.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (e.clone(), String::new()),
    });
    for (k, v) in image.chain(container) {
        set_env(&mut out, k, v);
    }
    out
}

/// The working directory.
pub fn cwd(working_dir: Option<&str>, image: &ImageDefaults) -> String {
    working_dir
        .filter(|d| !d.is_empty())
        .or(image.working_dir.as_deref())
        .unwrap_or("/")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_override_entrypoint_and_cmd() {
        let (ep, cmd) = (
            s(&["/docker-entrypoint.sh"]),
            s(&["nginx", "-g", "daemon off;"]),
        );
        assert_eq!(
            argv(&ep, &cmd, &[], &[]),
            s(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(
            argv(&ep, &cmd, &[], &s(&["sleep", "1"])),
            s(&["/docker-entrypoint.sh", "sleep", "1"])
        );
        assert_eq!(argv(&ep, &cmd, &s(&["sh"]), &[]), s(&["sh"]));
        assert_eq!(
            argv(&ep, &cmd, &s(&["sh", "-c"]), &s(&["true"])),
            s(&["sh", "-c", "true"])
        );
        assert_eq!(argv(&s(&[""]), &s(&["sh"]), &[], &[]), s(&["sh"]));
        assert!(argv(&[], &[], &[], &[]).is_empty());
    }

    #[test]
    fn environment_in_the_kubelet_s_order() {
        let env = env(
            &s(&["PATH=/opt/bin:/bin", "NGINX_VERSION=1.27", "EMPTY"]),
            "web-0",
            vec![
                ("NGINX_VERSION".into(), "mine".into()),
                ("A".into(), "1".into()),
            ],
        );
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("PATH", "/opt/bin:/bin"),
                ("HOSTNAME", "web-0"),
                ("NGINX_VERSION", "mine"),
                ("EMPTY", ""),
                ("A", "1")
            ]
        );
    }

    #[test]
    fn working_dir_and_oci_config() {
        let config: oci_spec::image::Config = serde_json::from_str(
            r#"{"Entrypoint":["/e"],"Cmd":["c"],"Env":["A=1"],"WorkingDir":"/srv","User":"app"}"#,
        )
        .unwrap();
        let d = ImageDefaults::from_oci(&config);
        assert_eq!(
            (d.entrypoint.clone(), d.cmd.clone(), d.user.clone()),
            (s(&["/e"]), s(&["c"]), "app".to_string())
        );
        assert_eq!(cwd(None, &d), "/srv");
        assert_eq!(cwd(Some("/x"), &d), "/x");
        assert_eq!(cwd(Some(""), &ImageDefaults::default()), "/");
    }
}
