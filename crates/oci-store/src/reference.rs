//! Image references, normalised as Kubernetes and containerd normalise them:
//! `busybox` → `docker.io/library/busybox:latest`.

use oci_client::Reference;

use crate::Error;

/// Parses `image` into a fully qualified reference: registry `docker.io` and the `library/`
/// namespace when absent, tag `latest` when there is neither tag nor digest.
pub fn normalize(image: &str) -> Result<Reference, Error> {
    let invalid = |reason: String| Error::InvalidReference {
        image: image.to_string(),
        reason,
    };
    if image.is_empty() || image.trim() != image {
        return Err(invalid("invalid reference format".into()));
    }
    Reference::try_from(image).map_err(|e| invalid(e.to_string()))
}

/// The name the store keeps an image under: the normalised reference.
pub fn store_name(reference: &Reference) -> String {
    reference.whole()
}

/// The digest reference of an image, `registry/repository@sha256:…`: the container's
/// `imageID` and the `RepoDigests` entry.
pub fn digest_reference(reference: &Reference, digest: &str) -> String {
    format!(
        "{}/{}@{}",
        reference.registry(),
        reference.repository(),
        digest
    )
}

/// Whether a registry host (with optional port) is on loopback: Docker and containerd
/// speak plain HTTP to these without any setting.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_as_kubernetes() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("bitnami/nginx:1.25", "docker.io/bitnami/nginx:1.25"),
            (
                "registry.k8s.io/e2e-test-images/agnhost:2.39",
                "registry.k8s.io/e2e-test-images/agnhost:2.39",
            ),
            ("127.0.0.1:5000/demo:1", "127.0.0.1:5000/demo:1"),
            ("localhost/demo", "localhost/demo:latest"),
        ];
        for (image, want) in cases {
            assert_eq!(store_name(&normalize(image).unwrap()), want, "{image}");
        }
        let hex = "a".repeat(64);
        let pinned = normalize(&format!("nginx@sha256:{hex}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest(), Some(format!("sha256:{hex}").as_str()));
        assert_eq!(
            digest_reference(&pinned, "sha256:ff"),
            "docker.io/library/nginx@sha256:ff"
        );
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for image in ["", " nginx", "Nginx", "nginx:", "nginx@sha256:xyz", "a//b"] {
            assert!(
                matches!(normalize(image), Err(Error::InvalidReference { .. })),
                "{image:?}"
            );
        }
    }

    #[test]
    fn loopback_registries() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "registry.local:5000",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }
}
