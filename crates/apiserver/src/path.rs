//! Request paths to REST targets, as kube-apiserver's RequestInfoFactory splits them.

use kinet_types::registry::{self, Resource};

/// Finds a custom resource by group, version and plural.
pub type Custom<'a> = dyn Fn(&str, &str, &str) -> Option<&'static Resource> + 'a;

/// What a resource request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// Every non-resource or resource path the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api` or `/apis`.
    Root {
        legacy: bool,
    },
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/apis/{group}`.
    Group {
        group: String,
    },
    Resource(Target),
    /// A group/version we serve, but a resource we do not.
    Unknown,
}

/// Splits `/api/...` and `/apis/...` paths of built-in resources. Returns None for other paths.
pub fn route(path: &str) -> Option<Route> {
    route_with(path, &|_, _, _| None)
}

/// Like [`route`], with `custom` naming the resources served beyond the built-in ones
/// (group, version, plural), as CustomResourceDefinitions add them.
pub fn route_with(path: &str, custom: &Custom<'_>) -> Option<Route> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(Route::Root { legacy: true }),
        ["apis"] => return Some(Route::Root { legacy: false }),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            return Some(Route::Group {
                group: group.to_string(),
            })
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Route::GroupVersion {
            group: group.into(),
            version: version.into(),
        });
    }
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/{ns}/{resource}...` names a namespaced resource; `namespaces/{name}[/status|finalize]`
    // names the Namespace object itself.
    let (namespace, rest): (Option<String>, Vec<&str>) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if *resource != "status" && *resource != "finalize" =>
        {
            (
                Some(ns.to_string()),
                std::iter::once(*resource)
                    .chain(tail.iter().copied())
                    .collect(),
            )
        }
        _ => (None, rest.to_vec()),
    };
    let Some(resource) = rest.first().and_then(|plural| {
        registry::lookup(group, version, plural).or_else(|| custom(group, version, plural))
    }) else {
        return Some(Route::Unknown);
    };
    if namespace.is_some() && !resource.namespaced() {
        return Some(Route::Unknown);
    }
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3
        || subresource.as_deref().is_some_and(|s| {
            !resource.has_subresource(s) && !crate::tokenrequest::serves(resource, s)
        })
    {
        return Some(Route::Unknown);
    }
    Some(Route::Resource(Target {
        resource,
        namespace,
        name,
        subresource,
        watch_prefix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path) {
            Some(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn splits_resource_paths() {
        let t = target("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(t.resource.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("log"));

        let t = target("/apis/apps/v1/namespaces/ns1/deployments/web/scale");
        assert_eq!(t.resource.kind, "Deployment");
        assert_eq!(t.subresource.as_deref(), Some("scale"));

        let t = target("/api/v1/pods");
        assert_eq!((t.namespace, t.name), (None, None));

        let t = target("/api/v1/watch/namespaces/default/services");
        assert!(t.watch_prefix);
        assert_eq!(t.resource.plural, "services");
    }

    #[test]
    fn namespace_objects_and_their_subresources() {
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(t.resource.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = target("/api/v1/namespaces/x/finalize");
        assert_eq!(t.name.as_deref(), Some("x"));
        assert_eq!(t.subresource.as_deref(), Some("finalize"));
        let t = target("/api/v1/namespaces");
        assert_eq!(t.name, None);
    }

    #[test]
    fn non_resources_and_unknowns() {
        assert_eq!(route("/api"), Some(Route::Root { legacy: true }));
        assert_eq!(
            route("/apis/apps"),
            Some(Route::Group {
                group: "apps".into()
            })
        );
        assert_eq!(
            route("/apis/apps/v1"),
            Some(Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(route("/api/v1/widgets"), Some(Route::Unknown));
        assert_eq!(
            route("/api/v1/namespaces/default/nodes"),
            Some(Route::Unknown)
        );
        assert_eq!(
            route("/api/v1/namespaces/default/pods/x/bogus"),
            Some(Route::Unknown)
        );
        assert_eq!(route("/healthz"), None);
    }
}
