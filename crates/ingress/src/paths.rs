//! Ingress v1 path matching: `Exact` compares whole paths (case-sensitive); `Prefix` compares
//! `/`-separated elements, so `/foo` matches `/foo`, `/foo/` and `/foo/bar` but not `/foobar`,
//! and a trailing slash on either side is ignored. `ImplementationSpecific` is `Prefix`, as in
//! ingress-nginx.

/// How a rule's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathKind {
    Exact,
    Prefix,
}

impl PathKind {
    /// The API's `pathType`; anything but `Exact` matches as a prefix.
    pub fn from_api(path_type: &str) -> PathKind {
        if path_type == "Exact" {
            PathKind::Exact
        } else {
            PathKind::Prefix
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Exact => "Exact",
            PathKind::Prefix => "Prefix",
        }
    }
}

fn elements(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|e| !e.is_empty())
}

/// Whether a request for `path` (without its query) matches the rule `(kind, rule)`.
pub fn matches(kind: PathKind, rule: &str, path: &str) -> bool {
    match kind {
        PathKind::Exact => rule == path,
        PathKind::Prefix => {
            let mut requested = elements(path);
            elements(rule).all(|want| requested.next() == Some(want))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathKind::{Exact, Prefix};
    use super::*;

    #[test]
    fn exact_is_whole_and_case_sensitive() {
        assert!(matches(Exact, "/foo", "/foo"));
        assert!(!matches(Exact, "/foo", "/foo/"));
        assert!(!matches(Exact, "/foo", "/FOO"));
        assert!(!matches(Exact, "/foo/", "/foo"));
    }

    #[test]
    fn prefix_is_element_wise() {
        let cases = [
            ("/", "/anything/at/all", true),
            ("/foo", "/foo", true),
            ("/foo", "/foo/", true),
            ("/foo", "/foo/bar", true),
            ("/foo", "/foobar", false),
            ("/foo", "/FOO", false),
            ("/aaa/bbb", "/aaa/bbb/ccc", true),
            ("/aaa/bbb", "/aaa/bbbxyz", false),
            ("/aaa/bbb/", "/aaa/bbb", true),
            ("/aaa/bbb/", "/aaa/bbb/", true),
            ("/aaa", "/aaaccc", false),
        ];
        for (rule, path, want) in cases {
            assert_eq!(matches(Prefix, rule, path), want, "{rule} vs {path}");
        }
    }

    #[test]
    fn implementation_specific_is_prefix() {
        assert_eq!(PathKind::from_api("ImplementationSpecific"), Prefix);
        assert_eq!(PathKind::from_api("Exact"), Exact);
    }
}
