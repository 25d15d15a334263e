//! What a container's process is, from its image and the pod's `command`/`args`.
//!
//! Kubernetes' rule: `command` replaces the image's ENTRYPOINT, `args` replaces its CMD
//! (and `command` alone drops CMD). The resulting argv either starts the image's own
//! program, which kinet provides in-process, or something else, which runs on the host.

use crate::agnhost;
use crate::catalog::{Builtin, Image, ImageKind};

/// What the container process should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `kinet image-run <image> -- <args>`: a built-in server run in-process.
    Builtin {
        /// The catalog name (`nginx`, `agnhost`, ...).
        image: &'static str,
        /// The arguments after the image's program name.
        args: Vec<String>,
    },
    /// A host command (shell images, or an entrypoint override that is not the image's
    /// program), resolved on the host's `PATH`.
    Exec {
        /// The full argv.
        argv: Vec<String>,
    },
}

/// Why a container cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `command` and `args` and the image's defaults leave nothing to run.
    #[error("the container's command is empty")]
    EmptyCommand,
    /// An agnhost subcommand kinet does not implement.
    #[error("agnhost {0:?}: not built into kinet (it has netexec, serve-hostname and pause)")]
    UnsupportedSubcommand(String),
    /// Flags the image's program refuses.
    #[error("{program}: {message}")]
    InvalidArgs {
        /// `agnhost netexec`, ...
        program: String,
        /// pflag's wording.
        message: String,
    },
    /// `run_builtin` was given an image it does not serve.
    #[error("no built-in image {0:?} (kinet has: {known})", known = crate::catalog::known_names())]
    UnknownImage(String),
}

/// Plans the process for a container of `image` with the pod's `command` and `args`.
pub fn plan(image: &Image, command: &[String], args: &[String]) -> Result<Plan, Error> {
    let (entrypoint, cmd): (&[&str], &[&str]) = match image.kind {
        ImageKind::Shell { cmd } => (&[], cmd),
        ImageKind::Builtin(Builtin::Nginx) => {
            (&["/docker-entrypoint.sh"], &["nginx", "-g", "daemon off;"])
        }
        ImageKind::Builtin(Builtin::Httpd) => (&[], &["httpd-foreground"]),
        ImageKind::Builtin(Builtin::Agnhost) => (&["/agnhost"], &["pause"]),
        ImageKind::Builtin(Builtin::Pause) => (&["/pause"], &[]),
        ImageKind::Builtin(Builtin::Dns) => (&["/kinet-dns"], &[]),
        ImageKind::Builtin(Builtin::Ingress) => (&["/kinet-ingress"], &[]),
        ImageKind::Builtin(Builtin::Proxy) => (&["/kinet-proxy"], &[]),
        ImageKind::Builtin(Builtin::Policy) => (&["/kinet-policy"], &[]),
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut argv = kinet_runtime::config::argv(&owned(entrypoint), &owned(cmd), command, args);
    let ImageKind::Builtin(builtin) = image.kind else {
        return exec(argv);
    };
    // nginx's entrypoint script ends in `exec "$@"`.
    if builtin == Builtin::Nginx
        && argv
            .first()
            .is_some_and(|a| program(a) == "docker-entrypoint.sh")
    {
        argv.remove(0);
    }
    let own: &[&str] = match builtin {
        Builtin::Nginx => &["nginx", "nginx-debug"],
        Builtin::Httpd => &["httpd-foreground", "httpd"],
        Builtin::Agnhost => &["agnhost", "agnhost-2"],
        Builtin::Pause => &["pause"],
        Builtin::Dns => &["kinet-dns"],
        Builtin::Ingress => &["kinet-ingress"],
        Builtin::Proxy => &["kinet-proxy"],
        Builtin::Policy => &["kinet-policy"],
    };
    match argv.first() {
        Some(first) if own.contains(&program(first)) => {
            let args = argv.split_off(1);
            if builtin == Builtin::Agnhost {
                agnhost::Command::parse(&args)?;
            }
            Ok(Plan::Builtin {
                image: image.name,
                args,
            })
        }
        _ => exec(argv),
    }
}

fn exec(argv: Vec<String>) -> Result<Plan, Error> {
    if argv.is_empty() {
        return Err(Error::EmptyCommand);
    }
    Ok(Plan::Exec { argv })
}

/// The program name of an argv[0]: `/usr/sbin/nginx` is `nginx`.
fn program(arg0: &str) -> &str {
    arg0.rsplit('/').next().unwrap_or(arg0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::lookup;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    fn plan_for(image: &str, command: &[&str], args: &[&str]) -> Result<Plan, Error> {
        plan(lookup(image).unwrap(), &s(command), &s(args))
    }

    fn builtin(image: &'static str, args: &[&str]) -> Result<Plan, Error> {
        Ok(Plan::Builtin {
            image,
            args: s(args),
        })
    }

    fn exec_of(argv: &[&str]) -> Result<Plan, Error> {
        Ok(Plan::Exec { argv: s(argv) })
    }

    #[test]
    fn web_servers() {
        assert_eq!(
            plan_for("nginx", &[], &[]),
            builtin("nginx", &["-g", "daemon off;"])
        );
        assert_eq!(
            plan_for("nginx:1.27", &["nginx"], &[]),
            builtin("nginx", &[])
        );
        assert_eq!(
            plan_for(
                "nginx",
                &["/usr/sbin/nginx-debug", "-g", "daemon off;"],
                &[]
            ),
            builtin("nginx", &["-g", "daemon off;"])
        );
        // Args replace CMD; the entrypoint script execs them.
        assert_eq!(
            plan_for("nginx", &[], &["sleep", "5"]),
            exec_of(&["sleep", "5"])
        );
        assert_eq!(
            plan_for("nginx", &["sh", "-c", "echo hi"], &[]),
            exec_of(&["sh", "-c", "echo hi"])
        );
        assert_eq!(plan_for("httpd:2.4", &[], &[]), builtin("httpd", &[]));
        assert_eq!(
            plan_for("httpd", &["httpd", "-DFOREGROUND"], &[]),
            builtin("httpd", &["-DFOREGROUND"])
        );
        assert_eq!(plan_for("httpd", &[], &["true"]), exec_of(&["true"]));
    }

    #[test]
    fn agnhost() {
        let image = "registry.k8s.io/e2e-test-images/agnhost:2.39";
        assert_eq!(plan_for(image, &[], &[]), builtin("agnhost", &["pause"]));
        assert_eq!(
            plan_for(
                image,
                &[],
                &["netexec", "--http-port=8080", "--udp-port=8081"]
            ),
            builtin(
                "agnhost",
                &["netexec", "--http-port=8080", "--udp-port=8081"]
            )
        );
        assert_eq!(
            plan_for(image, &["/agnhost", "serve-hostname"], &["--port", "80"]),
            builtin("agnhost", &["serve-hostname", "--port", "80"])
        );
        assert_eq!(
            plan_for(image, &["sleep"], &["1"]),
            exec_of(&["sleep", "1"])
        );
        assert_eq!(
            plan_for(image, &[], &["mounttest"]),
            Err(Error::UnsupportedSubcommand("mounttest".into()))
        );
        assert!(matches!(
            plan_for(image, &[], &["netexec", "--bogus"]),
            Err(Error::InvalidArgs { .. })
        ));
    }

    #[test]
    fn pause() {
        assert_eq!(
            plan_for("registry.k8s.io/pause:3.10", &[], &[]),
            builtin("pause", &[])
        );
        assert_eq!(plan_for("pause", &["/pause"], &[]), builtin("pause", &[]));
    }

    #[test]
    fn cluster_dns() {
        let args = ["--zone", "cluster.local", "--upstream", "192.0.2.1"];
        assert_eq!(
            plan_for("kinet-dns:0.1.0", &[], &args),
            builtin("kinet-dns", &args)
        );
        assert_eq!(plan_for("kinet-dns", &[], &[]), builtin("kinet-dns", &[]));
        assert_eq!(plan_for("kinet-dns", &["sh"], &[]), exec_of(&["sh"]));
    }

    #[test]
    fn shell_images() {
        assert_eq!(plan_for("busybox", &[], &[]), exec_of(&["sh"]));
        assert_eq!(plan_for("alpine", &[], &[]), exec_of(&["/bin/sh"]));
        assert_eq!(plan_for("ubuntu", &[], &[]), exec_of(&["/bin/bash"]));
        assert_eq!(plan_for("debian", &[], &[]), exec_of(&["bash"]));
        assert_eq!(
            plan_for(
                "busybox:1.36",
                &["sh", "-c"],
                &["while true; do sleep 1; done"]
            ),
            exec_of(&["sh", "-c", "while true; do sleep 1; done"])
        );
        assert_eq!(
            plan_for("busybox", &[], &["sleep", "3600"]),
            exec_of(&["sleep", "3600"])
        );
        assert_eq!(plan_for("busybox", &["sleep"], &[]), exec_of(&["sleep"]));
    }
}
