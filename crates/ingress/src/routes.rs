//! The routing table: a pure function of the API objects. A request is resolved in
//! ingress-nginx's order: the host (exact, then a one-label `*.` wildcard, then rules without
//! a host), then the longest matching path with `Exact` before `Prefix`, then the oldest
//! served Ingress's `defaultBackend`, else 404. When Ingresses repeat a host and path, the
//! oldest wins.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::backends::{Backend, Catalog};
use crate::class;
use crate::paths::{self, PathKind};

/// Set to `"false"` on an Ingress to serve its TLS hosts over plain HTTP too (ingress-nginx's
/// annotation, so manifests written for it keep working).
pub const SSL_REDIRECT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-redirect";

/// The objects the table is computed from.
pub struct Objects<'a> {
    pub ingresses: &'a [&'a Ingress],
    pub classes: &'a [&'a IngressClass],
    pub services: &'a [&'a Service],
    pub slices: &'a [&'a EndpointSlice],
}

/// One path rule or default backend, with what it came from.
#[derive(Debug)]
pub struct Route {
    /// The Ingress, `namespace/name`.
    pub ingress: Arc<str>,
    pub backend: Backend,
    /// Plain HTTP gets a 308 to HTTPS (the host has TLS in this route's Ingress).
    pub redirect_https: bool,
}

#[derive(Debug)]
struct PathRule {
    kind: PathKind,
    path: String,
    route: Arc<Route>,
}

impl PathRule {
    /// The resolution order: the longest path first, counted without a trailing slash (Prefix
    /// `/foo/` and `/foo` match the same requests), then Exact before Prefix, then the longer
    /// as written. The sort is stable, so the oldest Ingress stays first on a full tie.
    fn rank(&self) -> (Reverse<usize>, PathKind, Reverse<usize>) {
        let trimmed = self.path.trim_end_matches('/').len();
        (Reverse(trimmed), self.kind, Reverse(self.path.len()))
    }
}

/// A `kubernetes.io/tls` Secret named by `spec.tls`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// The compiled routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: BTreeMap<String, Vec<PathRule>>,
    /// `*.foo.com` rules under `foo.com`.
    wildcard: BTreeMap<String, Vec<PathRule>>,
    any_host: Vec<PathRule>,
    default: Option<Arc<Route>>,
    /// TLS certificates by host (`*.foo.com` as written).
    tls: BTreeMap<String, SecretRef>,
    /// Served Ingresses, `namespace/name`.
    served: Vec<String>,
}

/// What a request gets.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    Route(&'a Arc<Route>),
    NotFound,
}

fn creation_key(i: &Ingress) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        i.metadata.creation_timestamp.clone().map(|t| t.0),
        i.metadata.namespace.clone().unwrap_or_default(),
        i.metadata.name.clone().unwrap_or_default(),
    )
}

impl RouteTable {
    /// Compiles the Ingresses `controller` serves.
    pub fn build(objects: &Objects<'_>, controller: &str) -> RouteTable {
        let catalog = Catalog {
            services: objects.services,
            slices: objects.slices,
        };
        let mut ingresses: Vec<&Ingress> = objects
            .ingresses
            .iter()
            .copied()
            .filter(|i| class::served(i, objects.classes, controller))
            .collect();
        ingresses.sort_by_key(|i| creation_key(i));
        let mut table = RouteTable::default();
        for ing in ingresses {
            table.add(ing, &catalog);
        }
        for rules in table
            .exact
            .values_mut()
            .chain(table.wildcard.values_mut())
            .chain(std::iter::once(&mut table.any_host))
        {
            rules.sort_by_key(PathRule::rank);
            // A repeated (kind, path) keeps its first rule: the oldest Ingress's.
            let mut seen = HashSet::new();
            rules.retain(|r| seen.insert((r.kind, r.path.clone())));
        }
        table
    }

    fn add(&mut self, ing: &Ingress, catalog: &Catalog<'_>) {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{ns}/{}", ing.metadata.name.as_deref().unwrap_or_default());
        self.served.push(key.clone());
        let Some(spec) = &ing.spec else { return };
        let redirect_allowed = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SSL_REDIRECT_ANNOTATION))
            .is_none_or(|v| v != "false");
        let mut tls_hosts = Vec::new();
        for tls in spec.tls.iter().flatten() {
            for host in tls.hosts.iter().flatten() {
                let host = host.to_ascii_lowercase();
                tls_hosts.push(host.clone());
                if let Some(secret) = &tls.secret_name {
                    self.tls.entry(host).or_insert(SecretRef {
                        namespace: ns.clone(),
                        name: secret.clone(),
                    });
                }
            }
        }
        if let (Some(b), None) = (&spec.default_backend, &self.default) {
            self.default = Some(Arc::new(Route {
                ingress: key.as_str().into(),
                backend: catalog.resolve(&ns, b),
                redirect_https: false,
            }));
        }
        for rule in spec.rules.iter().flatten() {
            let Some(http) = &rule.http else { continue };
            let host = rule
                .host
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let redirect_https = redirect_allowed && tls_hosts.contains(&host);
            let list = if host.is_empty() {
                &mut self.any_host
            } else if let Some(domain) = host.strip_prefix("*.") {
                self.wildcard.entry(domain.to_string()).or_default()
            } else {
                self.exact.entry(host.clone()).or_default()
            };
            for p in &http.paths {
                list.push(PathRule {
                    kind: PathKind::from_api(&p.path_type),
                    path: p.path.clone().unwrap_or_else(|| "/".into()),
                    route: Arc::new(Route {
                        ingress: key.as_str().into(),
                        backend: catalog.resolve(&ns, &p.backend),
                        redirect_https,
                    }),
                });
            }
        }
    }

    /// The rules for a request's `host` (lowercase, without a port), if any host matches.
    fn host_rules(&self, host: &str) -> Option<&[PathRule]> {
        if let Some(rules) = self.exact.get(host) {
            return Some(rules);
        }
        if let Some((label, domain)) = host.split_once('.') {
            if !label.is_empty() {
                if let Some(rules) = self.wildcard.get(domain) {
                    return Some(rules);
                }
            }
        }
        (!self.any_host.is_empty()).then_some(self.any_host.as_slice())
    }

    /// Where a request for `host` (as sent: any case, maybe with a port) and `path` (without
    /// the query) goes.
    pub fn resolve(&self, host: &str, path: &str) -> Verdict<'_> {
        let host = normalize_host(host);
        let matched = self.host_rules(&host).and_then(|rules| {
            rules
                .iter()
                .find(|r| paths::matches(r.kind, &r.path, path))
                .map(|r| &r.route)
        });
        match matched.or(self.default.as_ref()) {
            Some(route) => Verdict::Route(route),
            None => Verdict::NotFound,
        }
    }

    /// Every `(host, Secret)` of `spec.tls`.
    pub fn tls_secrets(&self) -> impl Iterator<Item = (&String, &SecretRef)> {
        self.tls.iter()
    }

    /// The served Ingresses, `namespace/name`, oldest first.
    pub fn served(&self) -> &[String] {
        &self.served
    }
}

/// Lowercase, without a `:port` (IPv6 literals keep their brackets).
pub fn normalize_host(host: &str) -> String {
    let without_port = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

impl fmt::Display for RouteTable {
    /// One line per rule, in resolution order: the golden files' format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = |f: &mut fmt::Formatter<'_>, host: &str, rules: &[PathRule]| {
            for r in rules {
                let redirect = if r.route.redirect_https {
                    " (308 https)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "{host} {} {} -> {}{redirect}  from {}",
                    r.kind.as_str(),
                    r.path,
                    r.route.backend,
                    r.route.ingress
                )?;
            }
            Ok(())
        };
        for (host, list) in &self.exact {
            rules(f, host, list)?;
        }
        for (domain, list) in &self.wildcard {
            rules(f, &format!("*.{domain}"), list)?;
        }
        rules(f, "*", &self.any_host)?;
        if let Some(d) = &self.default {
            writeln!(f, "default -> {}  from {}", d.backend, d.ingress)?;
        }
        for (host, s) in &self.tls {
            writeln!(f, "tls {host} secret {}/{}", s.namespace, s.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
