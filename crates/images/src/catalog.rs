//! The images kinet runs without a registry.

use crate::reference::repository_name;

/// One built-in image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Repository name, as in `nginx` or `agnhost`.
    pub name: &'static str,
    /// One line for `kinet images`.
    pub description: &'static str,
    /// The ports the image's default process listens on.
    pub ports: &'static [u16],
    /// How a container of this image runs.
    pub kind: ImageKind,
}

/// How the image's process is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// kinet serves it in-process (`kinet image-run`).
    Builtin(Builtin),
    /// A distribution image: kinet's stand-in root with the host's `/usr` read-only (see
    /// `kinet_runtime::standin`) runs its commands; `cmd` is the image's
    /// default `CMD` (there is no `ENTRYPOINT`).
    Shell {
        /// The image's `CMD`, e.g. `["sh"]`.
        cmd: &'static [&'static str],
    },
}

/// The in-process implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// nginx's default site.
    Nginx,
    /// Apache httpd's default site.
    Httpd,
    /// Kubernetes' e2e test image (`netexec`, `serve-hostname`, `pause`).
    Agnhost,
    /// The pod sandbox image: sleeps until signalled.
    Pause,
    /// kinet's cluster DNS server (`kinet_dns`), the CoreDNS of a kinet cluster. The kinet
    /// binary runs it (it needs the API client), not [`crate::run_builtin`].
    Dns,
    /// kinet's ingress controller (`kinet_ingress`); like [`Builtin::Dns`], the kinet binary
    /// runs it.
    Ingress,
    /// kinet's service proxy (`kinet_proxy`), as a DaemonSet's pod on the host network.
    Proxy,
    /// kinet's NetworkPolicy enforcer, as a DaemonSet's pod on the host network.
    Policy,
}

/// The cluster DNS image's repository name; `kinet up` deploys [`DNS_IMAGE`].
pub const DNS_IMAGE_NAME: &str = "kinet-dns";
/// The reference `kinet up` puts in the `coredns` Deployment.
pub const DNS_IMAGE: &str = concat!("kinet-dns:", env!("CARGO_PKG_VERSION"));

/// The ingress controller image's repository name; `kinet up` deploys [`INGRESS_IMAGE`].
pub const INGRESS_IMAGE_NAME: &str = "kinet-ingress";
/// The reference `kinet up` puts in the ingress controller's Deployment.
pub const INGRESS_IMAGE: &str = concat!("kinet-ingress:", env!("CARGO_PKG_VERSION"));

/// The service proxy image (`kinet manifests proxy`).
pub const PROXY_IMAGE_NAME: &str = "kinet-proxy";
pub const PROXY_IMAGE: &str = concat!("kinet-proxy:", env!("CARGO_PKG_VERSION"));

/// The NetworkPolicy enforcer image (`kinet manifests policy`).
pub const POLICY_IMAGE_NAME: &str = "kinet-policy";
pub const POLICY_IMAGE: &str = concat!("kinet-policy:", env!("CARGO_PKG_VERSION"));

static CATALOG: &[Image] = &[
    Image {
        name: "nginx",
        description: "nginx's default site: the \"Welcome to nginx!\" page, access log on stdout",
        ports: &[80],
        kind: ImageKind::Builtin(Builtin::Nginx),
    },
    Image {
        name: "httpd",
        description: "Apache httpd's default site: \"It works!\", access log on stdout",
        ports: &[80],
        kind: ImageKind::Builtin(Builtin::Httpd),
    },
    Image {
        name: "agnhost",
        description:
            "Kubernetes e2e test image: netexec (8080/tcp, 8081/udp), serve-hostname (9376), pause",
        ports: &[8080, 8081, 9376],
        kind: ImageKind::Builtin(Builtin::Agnhost),
    },
    Image {
        name: "pause",
        description: "the pod sandbox image: sleeps until SIGTERM or SIGINT",
        ports: &[],
        kind: ImageKind::Builtin(Builtin::Pause),
    },
    Image {
        name: DNS_IMAGE_NAME,
        description: "cluster DNS (kube-dns): 53/udp+tcp, metrics and /health, /ready on 9153",
        ports: &[53, 9153],
        kind: ImageKind::Builtin(Builtin::Dns),
    },
    Image {
        name: INGRESS_IMAGE_NAME,
        description:
            "ingress controller (class kinet): HTTP 80, HTTPS 443, metrics and /healthz on 10254",
        ports: &[80, 443, 10254],
        kind: ImageKind::Builtin(Builtin::Ingress),
    },
    Image {
        name: PROXY_IMAGE_NAME,
        description: "service proxy (kube-proxy): nftables or iptables rules, metrics 10249, \
                      /healthz and /livez on 10256; host network",
        ports: &[10249, 10256],
        kind: ImageKind::Builtin(Builtin::Proxy),
    },
    Image {
        name: POLICY_IMAGE_NAME,
        description: "NetworkPolicy enforcer: one nftables table per node; host network",
        ports: &[],
        kind: ImageKind::Builtin(Builtin::Policy),
    },
    Image {
        name: "busybox",
        description: "shell image (sh); stand-in root, the host's /usr read-only",
        ports: &[],
        kind: ImageKind::Shell { cmd: &["sh"] },
    },
    Image {
        name: "alpine",
        description: "shell image (/bin/sh); stand-in root, the host's /usr read-only",
        ports: &[],
        kind: ImageKind::Shell { cmd: &["/bin/sh"] },
    },
    Image {
        name: "ubuntu",
        description: "shell image (/bin/bash); stand-in root, the host's /usr read-only",
        ports: &[],
        kind: ImageKind::Shell {
            cmd: &["/bin/bash"],
        },
    },
    Image {
        name: "debian",
        description: "shell image (bash); stand-in root, the host's /usr read-only",
        ports: &[],
        kind: ImageKind::Shell { cmd: &["bash"] },
    },
    Image {
        name: "centos",
        description: "shell image (/bin/bash); stand-in root, the host's /usr read-only",
        ports: &[],
        kind: ImageKind::Shell {
            cmd: &["/bin/bash"],
        },
    },
];

/// Every built-in image, for `kinet images`.
pub fn catalog() -> &'static [Image] {
    CATALOG
}

/// The built-in image an `image:` reference names (any tag or digest, with or without a
/// registry), or `None` when kinet does not know it.
pub fn lookup(image: &str) -> Option<&'static Image> {
    let name = repository_name(image)?;
    CATALOG.iter().find(|known| known.name == name)
}

/// The known image names, comma-separated, for "image not found" messages.
pub fn known_names() -> String {
    CATALOG
        .iter()
        .map(|i| i.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_by_repository() {
        let cases = [
            ("nginx", Some("nginx")),
            ("nginx:1.27", Some("nginx")),
            ("docker.io/library/nginx:latest", Some("nginx")),
            (
                "registry.k8s.io/e2e-test-images/agnhost:2.39",
                Some("agnhost"),
            ),
            ("busybox:1.36", Some("busybox")),
            ("httpd:2.4", Some("httpd")),
            ("registry.k8s.io/pause:3.10", Some("pause")),
            ("alpine:3.20", Some("alpine")),
            ("ubuntu:24.04", Some("ubuntu")),
            ("debian:bookworm", Some("debian")),
            ("centos:7", Some("centos")),
            ("kinet-dns:0.1.0", Some("kinet-dns")),
            (DNS_IMAGE, Some("kinet-dns")),
            (INGRESS_IMAGE, Some("kinet-ingress")),
            (PROXY_IMAGE, Some("kinet-proxy")),
            (POLICY_IMAGE, Some("kinet-policy")),
            ("redis:7", None),
            ("bitnami/nginx", None),
        ];
        for (image, want) in cases {
            assert_eq!(lookup(image).map(|i| i.name), want, "{image}");
        }
    }

    #[test]
    fn catalog_names_are_unique() {
        let mut names: Vec<_> = catalog().iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), catalog().len());
        assert!(known_names().starts_with("nginx, httpd, agnhost"));
    }
}
