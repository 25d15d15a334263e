//! Image references: which repository a pod's `image:` names.
//!
//! A reference is `[registry/][path/]name[:tag][@digest]`. The registry is the first
//! component when it looks like a host (has a `.` or `:`, or is `localhost`). On Docker Hub
//! only the official `library/` namespace is the same image as a bare name (`bitnami/nginx`
//! is a different image that listens elsewhere); on other registries (mirrors,
//! `registry.k8s.io/e2e-test-images/`) the last path component names the image.

/// The repository name an image reference points at, if the reference is well-formed.
pub fn repository_name(image: &str) -> Option<&str> {
    let image = image.trim();
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    // A tag is a `:` after the last `/` (a registry port sits before it).
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let without_tag = match without_digest[last_slash..].find(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    };
    let parts: Vec<&str> = without_tag.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (registry, path) = if parts.len() > 1 && is_registry(parts[0]) {
        (Some(parts[0]), &parts[1..])
    } else {
        (None, &parts[..])
    };
    let docker_hub = matches!(
        registry,
        None | Some("docker.io") | Some("index.docker.io") | Some("registry-1.docker.io")
    );
    match path {
        [name] => Some(name),
        [namespace, name] if docker_hub => (*namespace == "library").then_some(*name),
        [.., name] if !docker_hub => Some(name),
        _ => None,
    }
}

fn is_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

#[cfg(test)]
mod tests {
    use super::repository_name;

    #[test]
    fn names_from_references() {
        let cases = [
            ("nginx", Some("nginx")),
            ("nginx:1.27", Some("nginx")),
            ("nginx:1.27-alpine@sha256:abcd", Some("nginx")),
            ("nginx@sha256:abcd", Some("nginx")),
            ("library/nginx", Some("nginx")),
            ("docker.io/library/nginx:latest", Some("nginx")),
            ("docker.io/nginx", Some("nginx")),
            ("index.docker.io/library/busybox:1.36", Some("busybox")),
            (
                "registry.k8s.io/e2e-test-images/agnhost:2.39",
                Some("agnhost"),
            ),
            ("registry.k8s.io/pause:3.10", Some("pause")),
            ("localhost:5000/httpd:2.4", Some("httpd")),
            ("localhost/httpd", Some("httpd")),
            ("mirror.gcr.io/library/nginx", Some("nginx")),
            ("bitnami/nginx", None),
            ("docker.io/bitnami/nginx:1.25", None),
            ("", None),
            ("nginx/", None),
            ("  httpd:2.4  ", Some("httpd")),
        ];
        for (image, want) in cases {
            assert_eq!(repository_name(image), want, "{image}");
        }
    }
}
