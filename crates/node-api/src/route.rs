//! The kubelet paths the API server calls, parsed into requests. No I/O.

use http::Method;

/// A request to the agent, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Healthz,
    /// `GET /containerLogs/{namespace}/{pod}/{container}`.
    ContainerLogs(Target),
    /// `GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}` (an upgrade).
    Exec(Target),
    /// `GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}` (an upgrade).
    Attach(Target),
    /// `GET|POST /portForward/{namespace}/{pod}[/{uid}]` (an upgrade); `container` is None.
    PortForward(Target),
}

/// The pod (and container) a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
}

impl Route {
    /// The route of a method and path, or None (404) for anything else.
    pub fn parse(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        let get = method == Method::GET;
        let stream = get || method == Method::POST;
        let target = |ns: &str, pod: &str, container: Option<&str>| Target {
            namespace: ns.to_string(),
            pod: pod.to_string(),
            container: container.map(str::to_string),
        };
        match segments.as_slice() {
            ["healthz"] if get => Some(Route::Healthz),
            ["containerLogs", ns, pod, c] if get => {
                Some(Route::ContainerLogs(target(ns, pod, Some(c))))
            }
            // The kubelet also takes the pod's UID before the container; the UID is not checked.
            ["exec", ns, pod, c] | ["exec", ns, pod, _, c] if stream => {
                Some(Route::Exec(target(ns, pod, Some(c))))
            }
            ["attach", ns, pod, c] | ["attach", ns, pod, _, c] if stream => {
                Some(Route::Attach(target(ns, pod, Some(c))))
            }
            ["portForward", ns, pod] | ["portForward", ns, pod, _] if stream => {
                Some(Route::PortForward(target(ns, pod, None)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: &str, pod: &str, c: Option<&str>) -> Target {
        Target {
            namespace: ns.into(),
            pod: pod.into(),
            container: c.map(Into::into),
        }
    }

    #[test]
    fn kubelet_paths() {
        let cases = [
            (Method::GET, "/healthz", Some(Route::Healthz)),
            (
                Method::GET,
                "/containerLogs/default/web/nginx",
                Some(Route::ContainerLogs(t("default", "web", Some("nginx")))),
            ),
            (
                Method::POST,
                "/exec/default/web/nginx",
                Some(Route::Exec(t("default", "web", Some("nginx")))),
            ),
            (
                Method::GET,
                "/exec/default/web/0b0b-uid/nginx",
                Some(Route::Exec(t("default", "web", Some("nginx")))),
            ),
            (
                Method::POST,
                "/attach/kube-system/dns/coredns",
                Some(Route::Attach(t("kube-system", "dns", Some("coredns")))),
            ),
            (
                Method::POST,
                "/portForward/default/web",
                Some(Route::PortForward(t("default", "web", None))),
            ),
            (
                Method::GET,
                "/portForward/default/web/uid",
                Some(Route::PortForward(t("default", "web", None))),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(Route::parse(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn everything_else_is_not_found() {
        for (method, path) in [
            (Method::POST, "/containerLogs/default/web/nginx"),
            (Method::GET, "/containerLogs/default/web"),
            (Method::GET, "/containerLogs/default//nginx"),
            (Method::DELETE, "/exec/default/web/nginx"),
            (Method::GET, "/exec/default/web"),
            (Method::GET, "/run/default/web/nginx"),
            (Method::GET, "/portForward/default"),
            (Method::GET, "/"),
        ] {
            assert_eq!(Route::parse(&method, path), None, "{method} {path}");
        }
    }
}
